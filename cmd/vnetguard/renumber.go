package main

import (
	"fmt"
	"net/netip"

	"github.com/vnetguard/vnetguard/conflict"
	"github.com/vnetguard/vnetguard/conflict/decide"
	"github.com/vnetguard/vnetguard/netdef"
	"github.com/vnetguard/vnetguard/nmhook/guard"
)

func init() {
	register("renumber", "move a network to new subnets (a live libvirt network, or a file with --dry-run)", runRenumber)
}

func runRenumber(env *runEnv, args []string) int {
	fs := newFlags(env, "renumber", "NETWORK [--ipv4 CIDR] [--ipv6 CIDR] | --dry-run --file FILE [--ipv4 CIDR] [--ipv6 CIDR]", `
With NETWORK: restart that running libvirt network on new subnets now,
whatever its policy: the subnets given with --ipv4/--ipv6, else those that
clash with the host, else (with --force) all of them. A network that clashes
with nothing and is given no target is left alone (exit 0). Its guests stay
connected: libvirt's ports are kept and each guest's link is bounced so it
re-leases at once. Its persistent definition is kept.
With --dry-run --file FILE: print FILE's definition moved to new subnets on
stdout; only the moved addresses change, every other byte stays.
A subnet given with --ipv4/--ipv6 must be free; without one, each subnet that
clashes with the host is moved to a free one chosen as 'vnetguard pick' does.
Host parts are kept (.1 stays .1, a static .10 stays .10).`)
	var o resolverOptions
	var host hostOptions
	file := fs.String("file", "", "a network definition file (with --dry-run)")
	dryRun := fs.Bool("dry-run", false, "change nothing; with --file print the edited XML, with NETWORK print the plan")
	ipv4 := fs.String("ipv4", "", "move the network's IPv4 subnet to this CIDR")
	ipv6 := fs.String("ipv6", "", "move the network's IPv6 subnet to this CIDR")
	force := fs.Bool("force", false, "with NETWORK and no --ipv4/--ipv6: move every subnet even if none clashes")
	asJSON := fs.Bool("json", false, "with NETWORK: print the outcome as JSON")
	host.register(fs)
	o.register(fs)
	if code := parseFlags(env, fs, args); code >= 0 {
		return code
	}
	var targets []netip.Prefix
	for _, t := range []struct{ flag, val string }{{"--ipv4", *ipv4}, {"--ipv6", *ipv6}} {
		if t.val == "" {
			continue
		}
		p, err := parseCIDR(t.val)
		if err != nil {
			return fail(env, "renumber", fmt.Errorf("%s: %w", t.flag, err))
		}
		if p.Addr().Is4() != (t.flag == "--ipv4") {
			return fail(env, "renumber", fmt.Errorf("%s %s: wrong address family", t.flag, t.val))
		}
		targets = append(targets, p)
	}
	switch {
	case *file != "" && fs.NArg() > 0:
		return fail(env, "renumber", fmt.Errorf("give either NETWORK or --file, not both"))
	case *file != "":
		if !*dryRun {
			return fail(env, "renumber", fmt.Errorf("--file needs --dry-run: vnetguard never rewrites a definition file"))
		}
		return renumberFile(env, *file, targets, &host, &o.alloc)
	case fs.NArg() == 1:
		if host.stateFile != "" {
			return fail(env, "renumber", fmt.Errorf("--host-state goes with --file: a live network is checked against the live host"))
		}
		return renumberLive(env, fs.Arg(0), guard.UserRenumber{Targets: targets, Force: *force}, *dryRun, *asJSON, &o)
	}
	return fail(env, "renumber", fmt.Errorf("name one network, or use --dry-run --file FILE (see --help)"))
}

func renumberFile(env *runEnv, path string, targets []netip.Prefix, host *hostOptions, alloc *allocOptions) int {
	defs, err := loadDefinitions([]string{path})
	if err != nil {
		return fail(env, "renumber", err)
	}
	d := defs[0]
	ctx, err := alloc.resolve(hasIPv6(d.Network.Subnets()))
	if err != nil {
		return fail(env, "renumber", err)
	}
	view, live, err := host.read()
	if err != nil {
		return fail(env, "renumber", err)
	}
	en, err := engineNetwork(d, live)
	if err != nil {
		return fail(env, "renumber", err)
	}
	index := conflict.NewIndex(view)
	found := index.Check(en)
	var clashing []netip.Prefix
	for _, c := range found {
		clashing = append(clashing, c.Subnet)
	}
	if len(targets) == 0 && len(clashing) == 0 {
		fmt.Fprintf(env.stderr, "vnetguard renumber: %s: no conflict with the host; nothing to move\n", path)
		env.stdout.Write(d.Raw)
		return exitOK
	}
	moves, err := decide.Plan(decide.PlanInput{
		Network:  d.Network.Name,
		Own:      en.Subnets,
		Clashing: clashing,
		Targets:  targets,
		Others:   ctx.others,
		Remembered: func(from netip.Prefix) []netip.Prefix {
			return ctx.memory.Remembered(d.Network.Name, from)
		},
		Host:      index,
		Reserved:  ctx.reserved,
		Direction: ctx.direction,
		ULA:       ctx.ula,
		Usable:    ctx.usable,
	})
	if err != nil {
		return fail(env, "renumber", err)
	}
	nm := make([]netdef.Move, len(moves))
	for i, m := range moves {
		nm[i] = netdef.Move{From: m.From, To: m.To}
		fmt.Fprintf(env.stderr, "vnetguard renumber: %s: %s -> %s\n", path, m.From, m.To)
	}
	out, notes, err := d.Renumber(nm)
	if err != nil {
		return fail(env, "renumber", err)
	}
	for _, n := range notes {
		fmt.Fprintf(env.stderr, "vnetguard renumber: %s: %s\n", path, n)
	}
	env.stdout.Write(out)
	return exitOK
}

func renumberLive(env *runEnv, name string, req guard.UserRenumber, dryRun, asJSON bool, o *resolverOptions) int {
	g, _, err := o.newGuard(textLog(env), dryRun)
	if err != nil {
		return fail(env, "renumber", explainLibvirt(err))
	}
	defer g.Close()
	ctx, cancel := o.context()
	defer cancel()
	out := g.Renumber(ctx, name, req)
	return reportOutcomes(env, "renumber", []guard.Outcome{out}, asJSON)
}

func hasIPv6(ps []netip.Prefix) bool {
	for _, p := range ps {
		if p.Addr().Is6() {
			return true
		}
	}
	return false
}

package main

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/vnetguard/vnetguard/conflict"
	"github.com/vnetguard/vnetguard/conflict/decide"
	"github.com/vnetguard/vnetguard/netdef"
	"github.com/vnetguard/vnetguard/nmhook/guard"
)

func init() {
	register("renumber", "move a network to new subnets (a live libvirt network, or files with --dry-run)", runRenumber)
}

func runRenumber(env *runEnv, args []string) int {
	fs := newFlags(env, "renumber", "NETWORK [--ipv4 CIDR] [--ipv6 CIDR] [--force] [--dry-run] [--json]\n   or: vnetguard renumber --dry-run --file FILE|DIR... [--ipv4 CIDR] [--ipv6 CIDR] [--json]", `
With NETWORK: restart that running libvirt network on new subnets now,
whatever its policy: the subnets given with --ipv4/--ipv6, else those that
clash with the host, else (with --force) all of them. A network that clashes
with nothing and is given no target is left alone (exit 0). Its guests stay
connected: libvirt's ports are kept and each guest's link is bounced so it
re-leases at once. Its persistent definition is kept.
With --dry-run --file: print the definition moved to new subnets on stdout;
only the moved addresses change, every other byte stays. Several files, or
a directory of them, need --json (one edited definition per entry, keys:
file, network, conflicts, moves, notes, xml, error); none is moved onto another,
and a network overlapping one given before it is moved off it.
A subnet given with --ipv4/--ipv6 must be free and canonical (no host bits:
10.20.30.0/24, not 10.20.30.5/24); without one, each subnet that clashes is
moved to a free one chosen as 'vnetguard pick' does. Host parts are kept
(.1 stays .1, a static .10 stays .10).
A dry run exits 1 when it found a clash (it prints the fix all the same),
0 when there was none; a renumber exits 0 when it moved the network or had
nothing to move.`)
	var o resolverOptions
	var host hostOptions
	files := fs.StringArray("file", nil, "a network definition file, or a directory of *.xml files (repeatable; with --dry-run)")
	dryRun := fs.Bool("dry-run", false, "change nothing; with --file print the edited XML, with NETWORK print the plan")
	ipv4 := fs.String("ipv4", "", "move the network's IPv4 subnet to this subnet (canonical CIDR)")
	ipv6 := fs.String("ipv6", "", "move the network's IPv6 subnet to this subnet (canonical CIDR)")
	force := fs.Bool("force", false, "with NETWORK and no --ipv4/--ipv6: move every subnet even if none clashes")
	asJSON := fs.Bool("json", false, "print the outcome as JSON")
	host.register(fs)
	o.register(fs)
	if code := parseFlags(env, fs, args); code >= 0 {
		return code
	}
	targets, err := renumberTargets(*ipv4, *ipv6)
	if err != nil {
		return fail(env, "renumber", err)
	}
	switch {
	case len(*files) > 0 && fs.NArg() > 0:
		return fail(env, "renumber", fmt.Errorf("give either NETWORK or --file, not both"))
	case len(*files) > 0:
		if !*dryRun {
			return fail(env, "renumber", fmt.Errorf("--file needs --dry-run: vnetguard never rewrites a definition file"))
		}
		if *force {
			return fail(env, "renumber", fmt.Errorf("--force goes with NETWORK; with --file name the subnet with --ipv4/--ipv6"))
		}
		return renumberFiles(env, *files, targets, &host, &o.alloc, *asJSON)
	case fs.NArg() == 1:
		if host.stateFile != "" {
			return fail(env, "renumber", fmt.Errorf("--host-state goes with --file: a live network is checked against the live host"))
		}
		return renumberLive(env, fs.Arg(0), guard.UserRenumber{Targets: targets, Force: *force}, *dryRun, *asJSON, &o)
	case fs.NArg() > 1:
		return fail(env, "renumber", fmt.Errorf("one network at a time: got %s", strings.Join(fs.Args(), ", ")))
	}
	return fail(env, "renumber", fmt.Errorf("name one network, or use --dry-run --file FILE (see --help)"))
}

// renumberTargets reads --ipv4 and --ipv6 (each canonical, of its family).
func renumberTargets(ipv4, ipv6 string) ([]netip.Prefix, error) {
	var targets []netip.Prefix
	for _, t := range []struct {
		flag, val string
		is4       bool
	}{{"--ipv4", ipv4, true}, {"--ipv6", ipv6, false}} {
		if t.val == "" {
			continue
		}
		p, err := parseSubnetFlag(t.flag, t.val)
		if err != nil {
			return nil, err
		}
		if p.Addr().Is4() != t.is4 {
			return nil, fmt.Errorf("%s %s: wrong address family", t.flag, t.val)
		}
		targets = append(targets, p)
	}
	return targets, nil
}

// fileRenumber is one definition's dry-run renumber (--json).
type fileRenumber struct {
	File      string              `json:"file"`
	Network   string              `json:"network"`
	Conflicts []conflict.Conflict `json:"conflicts"`
	Moves     []conflict.Move     `json:"moves"`
	Notes     []string            `json:"notes"`
	XML       string              `json:"xml"`
	Error     string              `json:"error,omitempty"` // no plan: XML is the definition unchanged
}

func renumberFiles(env *runEnv, paths []string, targets []netip.Prefix, host *hostOptions, alloc *allocOptions, asJSON bool) int {
	defs, err := loadDefinitions(paths)
	if err != nil {
		return fail(env, "renumber", err)
	}
	if len(defs) > 1 && len(targets) > 0 {
		return fail(env, "renumber", fmt.Errorf("--ipv4/--ipv6 give one network's new subnets, but %s hold %d networks: name one file", strings.Join(paths, ", "), len(defs)))
	}
	if len(defs) > 1 && !asJSON {
		return fail(env, "renumber", fmt.Errorf("%s hold %d network definitions (%s), and stdout holds one edited definition: name one file, or add --json",
			strings.Join(paths, ", "), len(defs), strings.Join(defNames(defs), ", ")))
	}
	ctx, err := alloc.resolve(anyIPv6(defs))
	if err != nil {
		return fail(env, "renumber", err)
	}
	view, live, err := host.read()
	if err != nil {
		return fail(env, "renumber", err)
	}
	index := conflict.NewIndex(view)
	var results []fileRenumber
	var placed []conflict.Network // the networks done, on their new subnets
	code := exitOK
	for i, d := range defs {
		res, en, err := renumberDefinition(d, targets, index, live, ctx, placed, othersThan(defs, i))
		switch {
		case err != nil && !asJSON:
			return fail(env, "renumber", fmt.Errorf("%s: %w", d.Path, err))
		case err != nil:
			// The others are still done; this one stays as it is.
			fmt.Fprintf(env.stderr, "vnetguard renumber: %s: %v\n", d.Path, err)
			res.Error, res.Moves, res.Notes, res.XML = err.Error(), []conflict.Move{}, []string{}, string(d.Raw)
			code = worst(code, exitError)
		case len(res.Conflicts) > 0:
			code = worst(code, exitFound)
		}
		results = append(results, res)
		placed = append(placed, en)
	}
	if asJSON {
		if err := writeJSON(env.stdout, results); err != nil {
			return fail(env, "renumber", err)
		}
		return code
	}
	printFileRenumber(env, results[0])
	return code
}

// renumberDefinition plans and applies one definition's moves: its
// subnets that clash with the host or overlap a network placed before it
// move to free ones, or to targets. It returns the network on its new
// subnets.
func renumberDefinition(d *netdef.Definition, targets []netip.Prefix, index *conflict.Index, live bool, ctx *allocContext,
	placed []conflict.Network, others []netip.Prefix) (fileRenumber, conflict.Network, error) {
	res := fileRenumber{File: d.Path, Network: d.Network.Name, Conflicts: []conflict.Conflict{}, Moves: []conflict.Move{}, Notes: []string{}, XML: string(d.Raw)}
	en, err := engineNetwork(d, live)
	if err != nil {
		return res, en, err
	}
	res.Conflicts = append(res.Conflicts, index.Check(en)...)
	for _, c := range conflict.CheckOverlaps(append(placed[:len(placed):len(placed)], en)) {
		if c.Network == en.Name {
			res.Conflicts = append(res.Conflicts, c)
		}
	}
	var clashing []netip.Prefix
	for _, c := range res.Conflicts {
		clashing = append(clashing, c.Subnet)
	}
	if len(targets) == 0 && len(clashing) == 0 {
		return res, en, nil
	}
	for _, p := range placed {
		others = append(others, p.Subnets...)
	}
	moves, err := decide.Plan(decide.PlanInput{
		Network:  d.Network.Name,
		Own:      en.Subnets,
		Clashing: clashing,
		Targets:  targets,
		Others:   append(others, ctx.others...),
		Remembered: func(from netip.Prefix) []netip.Prefix {
			return ctx.remembered(d.Network.Name, from)
		},
		Host:      index,
		Reserved:  ctx.reserved,
		Direction: ctx.direction,
		ULA:       ctx.ula,
		Usable:    ctx.usable,
	})
	if err != nil {
		return res, en, err
	}
	nm := make([]netdef.Move, len(moves))
	for i, m := range moves {
		nm[i] = netdef.Move{From: m.From, To: m.To}
	}
	out, notes, err := d.Renumber(nm)
	if err != nil {
		return res, en, err
	}
	for _, m := range moves {
		en.Subnets = replacePrefix(en.Subnets, m.From, m.To)
	}
	res.Moves = append(res.Moves, moves...)
	res.XML, res.Notes = string(out), append(res.Notes, notes...)
	return res, en, nil
}

// printFileRenumber: the edited XML on stdout; each move and note on
// stderr, one line each.
func printFileRenumber(env *runEnv, r fileRenumber) {
	if len(r.Moves) == 0 && len(r.Conflicts) == 0 {
		fmt.Fprintf(env.stderr, "vnetguard renumber: %s: no conflict with the host; nothing to move\n", r.File)
	}
	for _, m := range r.Moves {
		fmt.Fprintf(env.stderr, "vnetguard renumber: %s: %s -> %s\n", r.File, m.From, m.To)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(env.stderr, "vnetguard renumber: %s: %s\n", r.File, n)
	}
	fmt.Fprint(env.stdout, r.XML)
}

func renumberLive(env *runEnv, name string, req guard.UserRenumber, dryRun, asJSON bool, o *resolverOptions) int {
	g, _, err := o.newGuard(cliLog(env, "renumber"), dryRun)
	if err != nil {
		return fail(env, "renumber", explainLibvirt(err))
	}
	defer g.Close()
	ctx, cancel := o.context()
	defer cancel()
	// Finish what an interrupted run left first, here, so that it is
	// reported (Renumber does it too, silently, and then finds nothing).
	outcomes := g.Recover(ctx)
	outcomes = append(outcomes, g.Renumber(ctx, name, req))
	return reportOutcomes(env, "renumber", outcomes, asJSON)
}

// othersThan lists the subnets of every definition but the i-th.
func othersThan(defs []*netdef.Definition, i int) []netip.Prefix {
	var out []netip.Prefix
	for j, d := range defs {
		if j != i {
			out = append(out, d.Network.Subnets()...)
		}
	}
	return out
}

func replacePrefix(ps []netip.Prefix, from, to netip.Prefix) []netip.Prefix {
	out := make([]netip.Prefix, len(ps))
	for i, p := range ps {
		if p.Masked() == from.Masked() {
			p = to
		}
		out[i] = p
	}
	return out
}

func defNames(defs []*netdef.Definition) []string {
	names := make([]string, len(defs))
	for i, d := range defs {
		names[i] = d.Network.Name
	}
	return names
}

func anyIPv6(defs []*netdef.Definition) bool {
	for _, d := range defs {
		if hasIPv6(d.Network.Subnets()) {
			return true
		}
	}
	return false
}

func hasIPv6(ps []netip.Prefix) bool {
	for _, p := range ps {
		if p.Addr().Is6() {
			return true
		}
	}
	return false
}

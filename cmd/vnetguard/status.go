package main

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/vnetguard/vnetguard/nmhook/guard"
)

func init() {
	register("status", "show every libvirt network, its subnets, conflicts and last action", runStatus)
}

func runStatus(env *runEnv, args []string) int {
	fs := newFlags(env, "status", "[--json]", `
List every libvirt network (active and only defined) with its policy, its
defined and live subnets, its current clashes with the host, and the last
action vnetguard took on it. Exit 1 when any network clashes.`)
	var o resolverOptions
	asJSON := fs.Bool("json", false, "print JSON (keys: name, backend, active, policy, defined_subnets, live_subnets, conflicts, last_action)")
	o.register(fs)
	if code := parseFlags(env, fs, args); code >= 0 {
		return code
	}
	g, _, err := o.newGuard(textLog(env), false)
	if err != nil {
		return fail(env, "status", explainLibvirt(err))
	}
	defer g.Close()
	ctx, cancel := o.context()
	defer cancel()
	// Like every run, status first finishes an interrupted change.
	st, _, err := g.Status(ctx)
	if err != nil {
		return fail(env, "status", explainLibvirt(err))
	}
	if *asJSON {
		if err := writeJSON(env.stdout, st); err != nil {
			return fail(env, "status", err)
		}
	} else {
		printStatus(env, st)
	}
	for _, s := range st {
		if len(s.Conflicts) > 0 {
			return exitFound
		}
	}
	return exitOK
}

func printStatus(env *runEnv, st []guard.NetworkStatus) {
	tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NETWORK\tBACKEND\tACTIVE\tPOLICY\tDEFINED\tLIVE\tLAST ACTION")
	for _, s := range st {
		last := "-"
		if a := s.LastAction; a != nil {
			last = a.Action + " " + a.Time.Local().Format("2006-01-02 15:04:05")
			if len(a.Moves) > 0 {
				last += " (" + strings.Join(a.Moves, ", ") + ")"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%v\t%s\t%s\t%s\t%s\n", s.Name, s.Backend, s.Active, s.Policy,
			joinPrefixes(s.DefinedSubnets), joinPrefixes(s.LiveSubnets), last)
	}
	tw.Flush()
	for _, s := range st {
		for _, c := range s.Conflicts {
			fmt.Fprintf(env.stdout, "conflict: %s: %s\n", s.Name, c.Reason)
		}
		if s.Error != "" {
			fmt.Fprintf(env.stdout, "error: %s: %s\n", s.Name, s.Error)
		}
	}
}

func joinPrefixes[T fmt.Stringer](ps []T) string {
	if len(ps) == 0 {
		return "-"
	}
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

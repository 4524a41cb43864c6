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
action vnetguard took on it. Like every run, it first finishes a change an
interrupted run left half done, and says so on stderr. Exit 0 when no
network clashes, 1 when any does, 2 when a network could not be read.`)
	var o resolverOptions
	asJSON := fs.Bool("json", false, "print JSON (keys: name, backend, active, policy, defined_subnets, live_subnets, conflicts, last_action, error)")
	o.register(fs)
	if code := parseFlags(env, fs, args); code >= 0 {
		return code
	}
	if fs.NArg() > 0 {
		return fail(env, "status", fmt.Errorf("unexpected argument %q (status covers every network)", fs.Arg(0)))
	}
	g, _, err := o.newGuard(cliLog(env, "status"), false)
	if err != nil {
		return fail(env, "status", explainLibvirt(err))
	}
	defer g.Close()
	ctx, cancel := o.context()
	defer cancel()
	// Like every run, status first finishes an interrupted change.
	st, recovered, err := g.Status(ctx)
	code := reportRecovered(env, recovered)
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
		switch {
		case s.Error != "":
			code = worst(code, exitError)
		case len(s.Conflicts) > 0:
			code = worst(code, exitFound)
		}
	}
	return code
}

// reportRecovered says on stderr, one line each, what finishing an
// interrupted change did (stdout is status's table or JSON).
func reportRecovered(env *runEnv, outcomes []guard.Outcome) int {
	code := exitOK
	for _, o := range outcomes {
		code = worst(code, outcomeCode(o))
		if o.Error != "" {
			fmt.Fprintf(env.stderr, "vnetguard status: %s\n", errorLine(o))
		} else if o.Note != "" {
			fmt.Fprintf(env.stderr, "vnetguard status: %s\n", outcomeLine(o))
		}
	}
	return code
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

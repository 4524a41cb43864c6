package main

import (
	"fmt"
	"strings"

	"github.com/vnetguard/vnetguard/nmhook/guard"
)

func init() {
	register("resolve", "one pass of detect and act over libvirt's networks", runResolve)
}

func runResolve(env *runEnv, args []string) int {
	fs := newFlags(env, "resolve", "[--dry-run] [--json]", `
Check every running libvirt network against the host's addresses and routes
(all tables) and act on each clash by the network's policy (metadata
vnetguard:policy on-conflict=renumber|destroy|warn, else --default-policy):
renumber restarts it on a free subnet with its guests re-plugged, destroy
stops it, warn only logs. The persistent definitions are never rewritten.
With --dry-run nothing is changed. Exit 0 when all went well, 2 on error.`)
	var o resolverOptions
	dryRun := fs.Bool("dry-run", false, "decide and print, change nothing")
	asJSON := fs.Bool("json", false, "print the outcomes as JSON")
	o.register(fs)
	if code := parseFlags(env, fs, args); code >= 0 {
		return code
	}
	g, _, err := o.newGuard(textLog(env), *dryRun)
	if err != nil {
		return fail(env, "resolve", explainLibvirt(err))
	}
	defer g.Close()
	// A run a user asked for is not damped.
	set := g.Settings()
	set.DampingWindow = 0
	g.SetSettings(set)
	ctx, cancel := o.context()
	defer cancel()
	outcomes, err := g.Pass(ctx)
	if err != nil {
		return fail(env, "resolve", explainLibvirt(err))
	}
	return reportOutcomes(env, "resolve", outcomes, *asJSON)
}

func reportOutcomes(env *runEnv, cmd string, outcomes []guard.Outcome, asJSON bool) int {
	code := exitOK
	for _, o := range outcomes {
		if o.Error != "" {
			code = exitError
		}
	}
	if asJSON {
		if outcomes == nil {
			outcomes = []guard.Outcome{}
		}
		if err := writeJSON(env.stdout, outcomes); err != nil {
			return fail(env, cmd, err)
		}
		return code
	}
	if len(outcomes) == 0 {
		fmt.Fprintln(env.stdout, "no conflicts")
	}
	for _, o := range outcomes {
		line := o.Network + ": " + o.Action
		if o.DryRun && o.Action != "none" {
			line += " (dry run)"
		}
		for _, m := range o.Moves {
			line += " " + m.From.String() + " -> " + m.To.String()
		}
		if len(o.Conflicts) > 0 {
			line += "; " + o.Conflicts[0].Reason
		}
		if o.Note != "" {
			line += "; " + o.Note
		}
		fmt.Fprintln(env.stdout, line)
		if o.Error != "" {
			fmt.Fprintf(env.stderr, "vnetguard %s: %s: %s\n", cmd, o.Network, strings.TrimSpace(o.Error))
		}
	}
	return code
}

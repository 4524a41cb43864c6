package main

import (
	"fmt"

	"github.com/vnetguard/vnetguard/conflict"
)

func init() {
	register("check", "report clashes between virtual networks and the host", runCheck)
}

func runCheck(env *runEnv, args []string) int {
	fs := newFlags(env, "check", "--network FILE|DIR... [--host-state FILE] [--json]", `
Report every clash between the given networks' subnets and the host's
addresses and routes (all routing tables, IPv4 and IPv6). The host is the
current network namespace, read through netlink, unless --host-state names a
saved state. Exit 0 when nothing clashes, 1 when something does.`)
	var host hostOptions
	host.register(fs)
	networks := fs.StringArray("network", nil, "a network definition file, or a directory of *.xml files (repeatable)")
	asJSON := fs.Bool("json", false, "print the conflicts as JSON")
	if code := parseFlags(env, fs, args); code >= 0 {
		return code
	}
	if fs.NArg() > 0 {
		return fail(env, "check", fmt.Errorf("unexpected argument %q (networks go with --network)", fs.Arg(0)))
	}
	if len(*networks) == 0 {
		return fail(env, "check", fmt.Errorf("no networks given: use --network FILE|DIR"))
	}
	defs, err := loadDefinitions(*networks)
	if err != nil {
		return fail(env, "check", err)
	}
	view, live, err := host.read()
	if err != nil {
		return fail(env, "check", err)
	}
	nets := make([]conflict.Network, 0, len(defs))
	for _, d := range defs {
		n, err := engineNetwork(d, live)
		if err != nil {
			return fail(env, "check", err)
		}
		nets = append(nets, n)
	}
	found := conflict.CheckAll(conflict.NewIndex(view), nets)
	if *asJSON {
		if found == nil {
			found = []conflict.Conflict{}
		}
		if err := writeJSON(env.stdout, found); err != nil {
			return fail(env, "check", err)
		}
	} else {
		for _, c := range found {
			fmt.Fprintf(env.stdout, "%s: %s\n", c.Network, c.Reason)
		}
		if len(found) == 0 {
			fmt.Fprintf(env.stdout, "no conflicts among %d network(s)\n", len(nets))
		}
	}
	if len(found) > 0 {
		return exitFound
	}
	return exitOK
}

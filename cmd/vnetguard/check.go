package main

import (
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/vnetguard/vnetguard/conflict"
	"github.com/vnetguard/vnetguard/nmhook/hostview"
)

func init() {
	register("check", "report clashes between virtual networks, and with the host", runCheck)
	register("host-state", "save the host's addresses and routes for 'check --host-state' (and bug reports)", runHostState)
}

func runCheck(env *runEnv, args []string) int {
	fs := newFlags(env, "check", "--network FILE|DIR... [--host-state FILE] [--json]", `
Report every clash of the given networks' subnets with the host's addresses
and routes (all routing tables, IPv4 and IPv6), and every overlap between
two of the given networks. The host is the current network namespace, read
through netlink, unless --host-state names a saved state; save one with
'vnetguard host-state'. Invalid definitions are an error: nothing is
checked on a doubt.

`+hostStateFormat)
	var host hostOptions
	host.register(fs)
	networks := fs.StringArray("network", nil, "a network definition file, or a directory of *.xml files (repeatable)")
	asJSON := fs.Bool("json", false, "print the conflicts as a JSON array (keys: network, subnet, kind, host, interface, table, gateway, routed, reason)")
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
	found := checkNetworks(conflict.NewIndex(view), nets)
	if *asJSON {
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

// checkNetworks returns the networks' clashes with the host and with each
// other, sorted by network (never nil, so JSON shows []).
func checkNetworks(ix *conflict.Index, nets []conflict.Network) []conflict.Conflict {
	found := append(conflict.CheckAll(ix, nets), conflict.CheckOverlaps(nets)...)
	slices.SortStableFunc(found, conflict.CompareConflicts)
	if found == nil {
		found = []conflict.Conflict{}
	}
	return found
}

func runHostState(env *runEnv, args []string) int {
	fs := newFlags(env, "host-state", "[--output FILE]", `
Write the current network namespace's addresses and routes (every routing
table, IPv4 and IPv6), read through netlink as every vnetguard run reads
them, as JSON: the format 'vnetguard check --host-state' and
'vnetguard pick --host-state' read back. Attach it to a bug report about a
clash vnetguard saw or missed. It needs no privileges. The output is always
JSON; --json is accepted for uniformity.

`+hostStateFormat)
	output := fs.StringP("output", "o", "", "write to this file (created with mode 0600, replaced if it exists) instead of stdout")
	fs.Bool("json", false, "accepted for uniformity: the output is always JSON")
	if code := parseFlags(env, fs, args); code >= 0 {
		return code
	}
	if fs.NArg() > 0 {
		return fail(env, "host-state", fmt.Errorf("unexpected argument %q (use --output FILE)", fs.Arg(0)))
	}
	view, err := hostview.Read()
	if err != nil {
		return fail(env, "host-state", fmt.Errorf("read host addresses and routes: %w", err))
	}
	if err := saveHostState(env.stdout, *output, view); err != nil {
		return fail(env, "host-state", err)
	}
	return exitOK
}

// saveHostState writes view in the --host-state format to path, or to w
// when path is "" or "-".
func saveHostState(w io.Writer, path string, view conflict.HostView) error {
	b, err := conflict.MarshalHostState(view)
	if err != nil {
		return err
	}
	// What is written must be what --host-state reads.
	if _, err := conflict.ParseHostState(b); err != nil {
		return fmt.Errorf("the host's state would not read back (please report this): %w", err)
	}
	if path == "" || path == "-" {
		_, err = w.Write(b)
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

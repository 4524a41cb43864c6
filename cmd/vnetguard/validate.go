package main

import (
	"fmt"
	"os"

	"github.com/vnetguard/vnetguard/netdef"
)

func init() {
	register("validate", "check network definition files against libvirt's rules", runValidate)
}

func runValidate(env *runEnv, args []string) int {
	fs := newFlags(env, "validate", "FILE...", `
Parse and validate libvirt network XML files. Each problem is printed on
stderr prefixed with its file name. Exit 0 when all are valid, 1 when any
is invalid, 2 on a usage error.`)
	if code := parseFlags(env, fs, args); code >= 0 {
		return code
	}
	if fs.NArg() == 0 {
		return fail(env, "validate", fmt.Errorf("no files given (see --help)"))
	}
	code := exitOK
	for _, path := range fs.Args() {
		if _, err := os.Stat(path); err != nil {
			// Unreadable is not "invalid": nothing was judged.
			fmt.Fprintf(env.stderr, "vnetguard validate: %v\n", err)
			return exitError
		}
		d, err := netdef.ParseFile(path)
		if err != nil {
			fmt.Fprintln(env.stderr, err)
			code = exitFound
			continue
		}
		for _, p := range d.Validate() {
			fmt.Fprintln(env.stderr, p.Error())
			code = exitFound
		}
	}
	return code
}

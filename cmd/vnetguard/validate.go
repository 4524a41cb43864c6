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
	asJSON := fs.Bool("json", false, "print every file's problems as JSON on stdout (keys: file, valid, problems)")
	if code := parseFlags(env, fs, args); code >= 0 {
		return code
	}
	if fs.NArg() == 0 {
		return fail(env, "validate", fmt.Errorf("no files given (see --help)"))
	}
	type fileResult struct {
		File     string    `json:"file"`
		Valid    bool      `json:"valid"`
		Problems []problem `json:"problems"`
	}
	var results []fileResult
	code := exitOK
	for _, path := range fs.Args() {
		if _, err := os.Stat(path); err != nil {
			// Unreadable is not "invalid": nothing was judged.
			fmt.Fprintf(env.stderr, "vnetguard validate: %v\n", err)
			return exitError
		}
		res := fileResult{File: path, Problems: []problem{}}
		d, err := netdef.ParseFile(path)
		if err != nil {
			fmt.Fprintln(env.stderr, err)
			res.Problems = append(res.Problems, problem{Rule: err.Error()})
		} else {
			for _, p := range d.Validate() {
				fmt.Fprintln(env.stderr, p.Error())
				res.Problems = append(res.Problems, problem{Element: p.Element, Line: p.Line, Rule: p.Rule})
			}
		}
		res.Valid = len(res.Problems) == 0
		if !res.Valid {
			code = exitFound
		}
		results = append(results, res)
	}
	if *asJSON {
		if err := writeJSON(env.stdout, results); err != nil {
			return fail(env, "validate", err)
		}
	}
	return code
}

type problem struct {
	Element string `json:"element,omitempty"`
	Line    int    `json:"line,omitempty"`
	Rule    string `json:"rule"`
}

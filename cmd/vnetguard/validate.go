package main

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/vnetguard/vnetguard/netdef"
)

func init() {
	register("validate", "check network definition files against libvirt's rules", runValidate)
}

// fileResult is one file's verdict (--json).
type fileResult struct {
	File     string    `json:"file"`
	Valid    bool      `json:"valid"`
	Problems []problem `json:"problems"`
	Error    string    `json:"error,omitempty"` // the file could not be read: nothing was judged
}

type problem struct {
	Element string `json:"element,omitempty"`
	Line    int    `json:"line,omitempty"`
	Rule    string `json:"rule"`
}

func runValidate(env *runEnv, args []string) int {
	flags := newFlags(env, "validate", "FILE|DIR... [--json]", `
Parse and validate libvirt network XML files; a directory stands for the
*.xml files in it. Each problem is printed on stderr prefixed with its file
name. A file that cannot be read (missing, a directory without *.xml
files) is reported and the others are still validated. Exit 0 when all are
valid, 1 when any is invalid, 2 when any could not be read or on a usage
error.`)
	asJSON := flags.Bool("json", false, "print every file's verdict as a JSON array on stdout (keys: file, valid, problems, error)")
	if code := parseFlags(env, flags, args); code >= 0 {
		return code
	}
	if flags.NArg() == 0 {
		return fail(env, "validate", fmt.Errorf("no files given (see --help)"))
	}
	results := []fileResult{}
	code := exitOK
	for _, arg := range flags.Args() {
		files, err := expandPath(arg)
		if err != nil {
			// Unreadable is not "invalid": nothing was judged.
			fmt.Fprintf(env.stderr, "vnetguard validate: %v\n", err)
			results = append(results, fileResult{File: arg, Problems: []problem{}, Error: err.Error()})
			code = worst(code, exitError)
			continue
		}
		for _, f := range files {
			res := validateFile(env, f)
			switch {
			case res.Error != "":
				code = worst(code, exitError)
			case !res.Valid:
				code = worst(code, exitFound)
			}
			results = append(results, res)
		}
	}
	if *asJSON {
		if err := writeJSON(env.stdout, results); err != nil {
			return fail(env, "validate", err)
		}
	}
	return code
}

// validateFile judges one file, printing each problem on stderr.
func validateFile(env *runEnv, path string) fileResult {
	res := fileResult{File: path, Problems: []problem{}}
	d, err := netdef.ParseFile(path)
	var pe *fs.PathError
	if errors.As(err, &pe) {
		// Unreadable (permissions, a FIFO...): nothing was judged.
		fmt.Fprintf(env.stderr, "vnetguard validate: %s: %v\n", path, pe.Err)
		res.Error = fmt.Sprintf("%s: %v", path, pe.Err)
		return res
	}
	if err != nil {
		fmt.Fprintln(env.stderr, err)
		res.Problems = append(res.Problems, problem{Rule: err.Error()})
		return res
	}
	for _, p := range d.Validate() {
		fmt.Fprintln(env.stderr, p.Error())
		res.Problems = append(res.Problems, problem{Element: p.Element, Line: p.Line, Rule: p.Rule})
	}
	res.Valid = len(res.Problems) == 0
	return res
}

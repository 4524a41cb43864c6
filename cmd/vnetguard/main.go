// Command vnetguard keeps virtual networks (libvirt's, container bridges,
// its own) from clashing with the host's LANs and VPNs. This file only
// dispatches to the subcommands; each lives in a file of its own.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"
)

// Exit codes, the same rule for every subcommand (exitRule says it to the
// user): the worst of what a run met wins.
const (
	exitOK    = 0 // nothing found, or what was found is dealt with
	exitFound = 1 // something found and left as it is: an invalid file, a clash (also in a dry run)
	exitError = 2 // usage or runtime error
)

// exitRule is the exit status rule as --help, the man page and the README
// state it.
const exitRule = `Exit status, the same rule for every command:
  0  nothing found, or done: every clash found was resolved
  1  something found and left as it is: an invalid file, a clash (a dry run,
     a warn policy, a network held back by damping)
  2  a usage or runtime error (also when some networks were handled
     and another failed)
The dispatcher hook always exits 0.`

// version is set by the linker at release time.
var version = "dev"

type command struct {
	summary string
	run     func(env *runEnv, args []string) int
}

var commands = map[string]command{}

func register(name, summary string, run func(*runEnv, []string) int) {
	commands[name] = command{summary: summary, run: run}
}

// runEnv carries the process's streams so commands are testable in-process.
type runEnv struct {
	stdout, stderr io.Writer
	stdin          io.Reader
	// terminal: stderr is a terminal, so a person reads it (see cliLog).
	terminal bool
}

func main() {
	env := &runEnv{stdout: os.Stdout, stderr: os.Stderr, stdin: os.Stdin, terminal: isTerminal(os.Stderr)}
	if isDispatcherName(os.Args[0]) {
		os.Exit(hook(env, os.Args, os.Getenv))
	}
	os.Exit(run(env, os.Args[1:]))
}

func run(env *runEnv, args []string) int {
	if len(args) == 0 {
		usage(env.stderr)
		return exitError
	}
	switch args[0] {
	case "-h", "--help", "help":
		if len(args) > 1 {
			if c, ok := commands[args[1]]; ok {
				return c.run(env, []string{"--help"})
			}
		}
		usage(env.stdout)
		return exitOK
	case "--version", "version":
		fmt.Fprintln(env.stdout, "vnetguard", version)
		return exitOK
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(env.stderr, "vnetguard: unknown command %q\n\n", args[0])
		usage(env.stderr)
		return exitError
	}
	return c.run(env, args[1:])
}

func usage(w io.Writer) {
	fmt.Fprint(w, `vnetguard keeps virtual networks from clashing with the host's LANs and VPNs.

Usage: vnetguard COMMAND [OPTIONS]

Commands:
`)
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-11s %s\n", n, commands[n].summary)
	}
	fmt.Fprint(w, `
Run 'vnetguard COMMAND --help' for a command's options.
FILE arguments may be directories: a directory stands for the *.xml files in it.
With --json a command prints one JSON document on stdout, even when some inputs
failed; it prints nothing there only when it failed before any result.

`+exitRule+"\n")
}

// newFlags makes a flag set whose --help prints the command's own usage.
func newFlags(env *runEnv, name, synopsis, about string) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetOutput(env.stderr)
	fs.SortFlags = false
	fs.Usage = func() {
		fmt.Fprintf(env.stdout, "Usage: vnetguard %s %s\n\n%s\n\nOptions:\n%s\n%s\n", name, synopsis, strings.TrimSpace(about), fs.FlagUsages(), exitRule)
	}
	return fs
}

// parseFlags returns -1 to go on, or the exit code to stop with.
func parseFlags(env *runEnv, fs *pflag.FlagSet, args []string) int {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return exitOK
		}
		fmt.Fprintf(env.stderr, "vnetguard %s: %v (see --help)\n", fs.Name(), err)
		return exitError
	}
	if err := checkSubnetFlags(fs); err != nil {
		return fail(env, fs.Name(), err)
	}
	return -1
}

// isTerminal tells whether f is a terminal.
func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// worst combines exit codes: an error beats a finding beats nothing.
func worst(codes ...int) int {
	return slices.Max(append(codes, exitOK))
}

// fail prints an error prefixed with the command and returns exitError.
func fail(env *runEnv, cmd string, err error) int {
	fmt.Fprintf(env.stderr, "vnetguard %s: %v\n", cmd, err)
	return exitError
}

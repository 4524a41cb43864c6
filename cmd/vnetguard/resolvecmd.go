package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"

	"github.com/vnetguard/vnetguard/netdef/libvirt/rpc"
	"github.com/vnetguard/vnetguard/nmhook/guard"
	"github.com/vnetguard/vnetguard/nmhook/logging"
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
stops it, warn only reports. The persistent definitions are never
rewritten. With --dry-run nothing is changed.
Prints one line per network it acted on or would act on (NETWORK: ACTION
...); errors go to stderr. Exit 0 when nothing clashes or every clash was
resolved (renumbered or destroyed), 1 when a clash is left (a dry run, a
warn policy), 2 when anything failed.`)
	var o resolverOptions
	dryRun := fs.Bool("dry-run", false, "decide and print, change nothing")
	asJSON := fs.Bool("json", false, "print the outcomes as a JSON array (keys: network, backend, action, policy, moves, conflicts, dry_run, note, retry_in, error)")
	o.register(fs)
	if code := parseFlags(env, fs, args); code >= 0 {
		return code
	}
	if fs.NArg() > 0 {
		return fail(env, "resolve", fmt.Errorf("unexpected argument %q (resolve covers every network)", fs.Arg(0)))
	}
	g, _, err := o.newGuard(cliLog(env, "resolve"), *dryRun)
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

// reportOutcomes prints one line per outcome: on stderr for one that
// failed, else on stdout (or, with asJSON, all of them as one JSON array
// on stdout). It returns the exit code (see outcomeCode).
func reportOutcomes(env *runEnv, cmd string, outcomes []guard.Outcome, asJSON bool) int {
	code := exitOK
	for _, o := range outcomes {
		code = worst(code, outcomeCode(o))
		if o.Error != "" {
			fmt.Fprintf(env.stderr, "vnetguard %s: %s\n", cmd, errorLine(o))
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
		if o.Error == "" {
			fmt.Fprintln(env.stdout, outcomeLine(o))
		}
	}
	return code
}

// outcomeCode applies the exit rule to one outcome: an error is 2; a clash
// left as it is (a dry run, warn, hold, nothing to move) is 1; a clash
// renumbered or destroyed, or no clash, is 0.
func outcomeCode(o guard.Outcome) int {
	switch {
	case o.Error != "":
		return exitError
	case len(o.Conflicts) == 0:
		return exitOK
	case o.DryRun:
		return exitFound
	case o.Action == "renumber" && len(o.Moves) > 0, o.Action == "destroy":
		return exitOK
	}
	return exitFound
}

// outcomeLine: "NETWORK: ACTION [(dry run)] [FROM -> TO...][; the first
// clash][; note]". The action "none" reads "unchanged".
func outcomeLine(o guard.Outcome) string {
	action := o.Action
	if action == "none" || action == "" {
		action = "unchanged"
	} else if o.DryRun {
		action += " (dry run)"
	}
	line := o.Network + ": " + action
	for _, m := range o.Moves {
		line += " " + m.From.String() + " -> " + m.To.String()
	}
	if len(o.Conflicts) > 0 {
		line += "; " + o.Conflicts[0].Reason
		if n := len(o.Conflicts) - 1; n > 0 {
			line += fmt.Sprintf(" (and %d more)", n)
		}
	}
	if o.Note != "" {
		line += "; " + o.Note
	}
	return line
}

// libvirtHint follows an error that says libvirt is not there at all, as
// explainLibvirt (resolver.go) does for errors before any outcome.
const libvirtHint = "(is libvirtd, or virtnetworkd, running? nothing was changed)"

// errorLine says what failed in one line. The network is named once: an
// error that already names it is not prefixed with it again.
func errorLine(o guard.Outcome) string {
	msg := strings.TrimSpace(o.Error)
	switch o.Action {
	case "renumber", "destroy", "recover":
		what := o.Action
		for _, m := range o.Moves {
			what += " " + m.From.String() + " -> " + m.To.String()
		}
		return fmt.Sprintf("%s: %s failed: %s", o.Network, what, msg)
	}
	if o.Action == "none" && strings.Contains(msg, rpc.ErrUnavailable.Error()) {
		msg += "\n" + libvirtHint // nothing was attempted
	}
	if strings.Contains(msg, "network "+o.Network) || strings.Contains(msg, fmt.Sprintf("%q", o.Network)) {
		return msg
	}
	return o.Network + ": " + msg
}

// cliLog is the logger of the commands a person runs (resolve, renumber,
// status), whose report is their outcome lines. Where stderr is not a
// terminal (a pipe, a file, a systemd unit) it is the full structured log
// the daemon writes: the journal under systemd, text lines otherwise. On a
// terminal it must not repeat the report: no timestamps, no record about
// a network's action (its outcome line says it), only a network's notes
// (a DHCP range clamped) and warnings and errors about no one network (a
// state file that cannot be saved).
func cliLog(env *runEnv, cmd string) *slog.Logger {
	if !env.terminal {
		return logging.New(env.stderr)
	}
	return slog.New(&terminalHandler{out: &lockedWriter{w: env.stderr}, prefix: "vnetguard " + cmd + ": "})
}

// terminalHandler writes the few log records a person at a terminal needs,
// one plain line each (see cliLog).
type terminalHandler struct {
	out    *lockedWriter
	prefix string
	attrs  []slog.Attr
}

func (h *terminalHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }

func (h *terminalHandler) Handle(_ context.Context, r slog.Record) error {
	attrs := append([]slog.Attr{}, h.attrs...)
	r.Attrs(func(a slog.Attr) bool { attrs = append(attrs, a); return true })
	var network, note, errText string
	var rest []string
	for _, a := range attrs {
		switch a.Key {
		case "network":
			network = a.Value.String()
		case "note":
			note = a.Value.String()
		case "error":
			errText = a.Value.String()
		default:
			rest = append(rest, a.Key+"="+a.Value.String())
		}
	}
	var line string
	switch {
	case network != "" && note != "":
		line = network + ": " + note
	case network != "" || r.Level < slog.LevelWarn:
		return nil // the outcome line reports it
	default:
		line = r.Message
		if r.Level < slog.LevelError {
			line = "warning: " + line
		}
		if errText != "" {
			line += ": " + errText
		}
		if len(rest) > 0 {
			line += " (" + strings.Join(rest, ", ") + ")"
		}
	}
	return h.out.println(h.prefix + line)
}

func (h *terminalHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr{}, h.attrs...), attrs...)
	return &c
}

// WithGroup: group names add nothing on a terminal.
func (h *terminalHandler) WithGroup(string) slog.Handler { return h }

// lockedWriter serialises whole lines from concurrent records.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) println(s string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, err := fmt.Fprintln(l.w, s)
	return err
}

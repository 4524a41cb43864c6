package main

import (
	"bytes"
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"testing"

	"github.com/vnetguard/vnetguard/conflict"
	"github.com/vnetguard/vnetguard/nmhook/guard"
)

var (
	clash = []conflict.Conflict{{Network: "n", Subnet: netip.MustParsePrefix("192.168.122.0/24"), Kind: conflict.KindAddress,
		Reason: "192.168.122.0/24 contains address 192.168.122.57/24 on wlp2s0"}}
	move = []conflict.Move{{From: netip.MustParsePrefix("192.168.122.0/24"), To: netip.MustParsePrefix("192.168.254.0/24")}}
)

func report(outcomes []guard.Outcome, asJSON bool) (int, string, string) {
	var out, errb bytes.Buffer
	code := reportOutcomes(&runEnv{stdout: &out, stderr: &errb}, "resolve", outcomes, asJSON)
	return code, out.String(), errb.String()
}

// Issue 8 item 5: one exit rule: 0 nothing found or every clash dealt
// with, 1 a clash left as it is (a dry run included), 2 an error.
func TestOutcomeExitRule(t *testing.T) {
	cases := []struct {
		name string
		o    guard.Outcome
		want int
	}{
		{"dry run with a clash", guard.Outcome{Network: "n", Action: "renumber", Moves: move, Conflicts: clash, DryRun: true}, exitFound},
		{"dry run, destroy policy", guard.Outcome{Network: "n", Action: "destroy", Conflicts: clash, DryRun: true}, exitFound},
		{"renumbered", guard.Outcome{Network: "n", Action: "renumber", Moves: move, Conflicts: clash}, exitOK},
		{"destroyed", guard.Outcome{Network: "n", Action: "destroy", Conflicts: clash}, exitOK},
		{"warn policy", guard.Outcome{Network: "n", Action: "warn", Conflicts: clash}, exitFound},
		{"held by damping", guard.Outcome{Network: "n", Action: "hold", Conflicts: clash, Note: "held back"}, exitFound},
		{"user renumber, no clash", guard.Outcome{Network: "n", Action: "none", Note: "no clash with the host; nothing to move"}, exitOK},
		{"user renumber to a target, no clash", guard.Outcome{Network: "n", Action: "renumber", Moves: move}, exitOK},
		{"recovered", guard.Outcome{Network: "n", Action: "recover", Note: "running on its new subnets"}, exitOK},
		{"failed", guard.Outcome{Network: "n", Action: "renumber", Moves: move, Conflicts: clash, Error: "boom"}, exitError},
		{"unknown network", guard.Outcome{Network: "n", Action: "none", Error: `no network named "n"`}, exitError},
	}
	for _, c := range cases {
		for _, asJSON := range []bool{false, true} {
			if code, _, _ := report([]guard.Outcome{c.o}, asJSON); code != c.want {
				t.Errorf("%s (json %v): exit %d, want %d", c.name, asJSON, code, c.want)
			}
		}
	}
	// The worst outcome wins.
	if code, _, _ := report([]guard.Outcome{cases[2].o, cases[4].o, cases[9].o}, false); code != exitError {
		t.Errorf("renumbered + warn + failed: exit %d, want 2", code)
	}
	if code, _, _ := report([]guard.Outcome{cases[2].o, cases[4].o}, false); code != exitFound {
		t.Errorf("renumbered + warn: exit %d, want 1", code)
	}
	if code, out, _ := report(nil, false); code != exitOK || out != "no conflicts\n" {
		t.Errorf("nothing: exit %d %q", code, out)
	}
}

// Issue 8 item 5: --help, of the tool and of every command, states the rule.
func TestHelpStatesTheExitRule(t *testing.T) {
	_, out, _ := runCLI(t, "--help")
	if !strings.Contains(out, exitRule) {
		t.Errorf("vnetguard --help lacks the exit rule:\n%s", out)
	}
	for name := range commands {
		if _, out, _ := runCLI(t, name, "--help"); !strings.Contains(out, exitRule) {
			t.Errorf("%s --help lacks the exit rule", name)
		}
	}
	for _, want := range []string{"1  something found", "a dry run", "every clash found was resolved"} {
		if !strings.Contains(exitRule, want) {
			t.Errorf("exit rule lacks %q", want)
		}
	}
}

// Issue 8 item 10: one line per outcome; a failed one is a single line on
// stderr, not a "NAME: none" line followed by the error, and the network
// is named once.
func TestOutcomeLines(t *testing.T) {
	_, out, errs := report([]guard.Outcome{{Network: "nosuchnet", Action: "none", Error: `no network named "nosuchnet"`}}, false)
	if out != "" || errs != "vnetguard resolve: no network named \"nosuchnet\"\n" {
		t.Errorf("unknown network: out %q err %q", out, errs)
	}
	_, out, errs = report([]guard.Outcome{{Network: "off", Action: "none",
		Note:  "network is not running; its definition is left as it is",
		Error: "cannot renumber network off: it is not running"}}, false)
	if out != "" || errs != "vnetguard resolve: cannot renumber network off: it is not running\n" {
		t.Errorf("inactive network: out %q err %q", out, errs)
	}
	// With --json, the outcome is in the JSON and the error on stderr too.
	code, out, errs := report([]guard.Outcome{{Network: "nosuchnet", Action: "none", Error: `no network named "nosuchnet"`}}, true)
	if code != exitError || !strings.Contains(out, `"error": "no network named`) || !strings.Contains(errs, "no network named") {
		t.Errorf("--json error: exit %d out %q err %q", code, out, errs)
	}
	// libvirt not there at all: the same hint as when it fails before any
	// outcome.
	_, _, errs = report([]guard.Outcome{{Network: "ab", Action: "none", Error: "list libvirt networks: libvirt unavailable: dial unix: no such file"}}, false)
	if !strings.Contains(errs, "ab: list libvirt networks") || !strings.Contains(errs, "nothing was changed") {
		t.Errorf("libvirt unavailable: %q", errs)
	}
	_, out, errs = report([]guard.Outcome{{Network: "rn", Action: "renumber", Moves: move, Conflicts: clash, Error: "could not start on its new subnets"}}, false)
	if out != "" || errs != "vnetguard resolve: rn: renumber 192.168.122.0/24 -> 192.168.254.0/24 failed: could not start on its new subnets\n" {
		t.Errorf("failed renumber: out %q err %q", out, errs)
	}
	_, out, errs = report([]guard.Outcome{
		{Network: "rn", Action: "renumber", Moves: move, Conflicts: clash},
		{Network: "wn", Action: "warn", Conflicts: append(clash, clash...)},
		{Network: "dr", Action: "destroy", Conflicts: clash, DryRun: true},
		{Network: "q", Action: "none", Note: "no clash with the host; nothing to move"},
	}, false)
	want := "rn: renumber 192.168.122.0/24 -> 192.168.254.0/24; " + clash[0].Reason + "\n" +
		"wn: warn; " + clash[0].Reason + " (and 1 more)\n" +
		"dr: destroy (dry run); " + clash[0].Reason + "\n" +
		"q: unchanged; no clash with the host; nothing to move\n"
	if out != want || errs != "" {
		t.Errorf("outcome lines:\n%s\nwant:\n%s\nstderr %q", out, want, errs)
	}
}

// Issue 8 item 10: on a terminal the log does not repeat the outcome
// lines and carries no timestamps; what the report lacks still shows.
func TestTerminalLogDoesNotRepeatTheReport(t *testing.T) {
	var errb bytes.Buffer
	log := cliLog(&runEnv{stderr: &errb, terminal: true}, "renumber")
	log.Info("acting", "network", "rn", "backend", "libvirt", "action", "renumber", "cause", "x")
	log.Warn("renumbered virtual network clashing with the host", "network", "rn", "old_subnet", "192.168.122.0/24")
	log.Error("could not finish an interrupted change; will retry on the next run", "network", "rn", "error", "boom")
	log.Info("renumber note", "network", "rn", "note", "DHCP range clamped")
	log.Info("something routine")
	log.Warn("cannot save remembered state", "error", "read-only file system")
	log.With("backend", "libvirt").Error("cannot read unfinished effects", "error", "EACCES")
	want := "vnetguard renumber: rn: DHCP range clamped\n" +
		"vnetguard renumber: warning: cannot save remembered state: read-only file system\n" +
		"vnetguard renumber: cannot read unfinished effects: EACCES (backend=libvirt)\n"
	if errb.String() != want {
		t.Errorf("terminal log:\n%s\nwant:\n%s", errb.String(), want)
	}
	// Elsewhere (a pipe, a file) the full structured log (text lines off
	// systemd).
	t.Setenv("JOURNAL_STREAM", "")
	errb.Reset()
	log = cliLog(&runEnv{stderr: &errb}, "renumber")
	if !log.Handler().Enabled(context.Background(), slog.LevelInfo) {
		t.Fatal("info records dropped off a terminal")
	}
	log.Warn("renumbered virtual network clashing with the host", "network", "rn")
	if !strings.Contains(errb.String(), "network=rn") {
		t.Errorf("pipe log: %q", errb.String())
	}
}

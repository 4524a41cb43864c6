// Command testsummary reads `go test -json` on stdin and prints what a
// person watching scripts/test-all needs: one line per package (and, with
// -v, one as each top-level test starts and ends, and as each subtest
// ends), the whole output of every failed test as soon as it fails, and
// nothing else of the passing ones.
//
//	go test -json ./... | testsummary [-v] [-logs DIR] [-tally FILE] [-failures FILE]
//
// It counts the "pass", "fail" and "skip" actions of events that name a test
// (top-level tests and subtests alike, each one once). A package that fails
// with no failed test (a build error, a panic or os.Exit outside a test, a
// timeout) counts as one failed test, and so does every test that started and
// never ended. -tally appends "PASSED FAILED SKIPPED" to FILE; -failures
// appends one "PACKAGE TEST" line per failure (TEST is "-" for a package
// failing outside its tests). With -logs (the lab's LAB_LOGDIR), a failed
// top-level test's output is followed by what NetworkManager and libvirtd
// logged while it ran (NetworkManager*.log and libvirtd*.log there, by
// their timestamps): the daemons' side of the failure, not the guests' DHCP
// clients'. It exits 1 when anything failed, else 0.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"
)

// event is one line of test2json's output (go doc test2json).
type event struct {
	Time        time.Time
	Action      string
	Package     string
	ImportPath  string // build-output and build-fail events (Go 1.24+)
	Test        string
	Elapsed     float64
	Output      string
	FailedBuild string
}

// Counts are the totals the summary line is made of.
type Counts struct{ Passed, Failed, Skipped int }

// Failure is a test, or a package outside its tests, that failed.
type Failure struct{ Package, Test string }

// summary is the state of one run: per package, the output of each
// top-level test (subtests' output included), what started and did not
// end, and the package's own lines.
type summary struct {
	out      io.Writer
	verbose  bool
	logDir   string // the lab's daemon logs, or ""
	counts   Counts
	failures []Failure
	pkgs     map[string]*pkgState
}

type pkgState struct {
	output  map[string][]string  // top-level test -> its lines and its subtests'
	started map[string]time.Time // top-level test -> when it started
	order   []string             // top-level tests in the order they started
	running map[string]bool      // tests (any level) started and not ended
	own     []string             // package-level lines (PASS, FAIL, ok, panics)
	counts  Counts
	failed  bool // some test in it failed
}

func newSummary(out io.Writer, verbose bool) *summary {
	return &summary{out: out, verbose: verbose, pkgs: map[string]*pkgState{}}
}

func (s *summary) pkg(name string) *pkgState {
	p := s.pkgs[name]
	if p == nil {
		p = &pkgState{output: map[string][]string{}, started: map[string]time.Time{}, running: map[string]bool{}}
		s.pkgs[name] = p
	}
	return p
}

// top is the top-level test a test belongs to.
func top(test string) string {
	if i := strings.IndexByte(test, '/'); i >= 0 {
		return test[:i]
	}
	return test
}

// module is this module's path, which shortPkg drops from package names.
var module = func() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Path != "" {
		return bi.Main.Path
	}
	return "github.com/vnetguard/vnetguard"
}()

// shortPkg names a package of this module by its directory.
func shortPkg(pkg string) string {
	if rest, ok := strings.CutPrefix(pkg, module+"/"); ok {
		return rest
	}
	return pkg
}

func (s *summary) line(raw string) {
	var ev event
	if err := json.Unmarshal([]byte(raw), &ev); err != nil || ev.Action == "" {
		// Not test2json: pass it through.
		fmt.Fprintln(s.out, raw)
		return
	}
	s.handle(ev)
}

func (s *summary) handle(ev event) {
	switch ev.Action {
	case "build-output":
		// Only a failing build (or vet) says anything: show it now.
		io.WriteString(s.out, ev.Output)
		return
	case "build-fail":
		return
	}
	p := s.pkg(ev.Package)
	if ev.Test == "" {
		switch ev.Action {
		case "output":
			p.own = append(p.own, ev.Output)
		case "pass", "skip":
			s.endPackage(ev, p)
		case "fail":
			s.endPackage(ev, p)
		}
		return
	}
	t := top(ev.Test)
	switch ev.Action {
	case "run":
		if _, seen := p.output[t]; !seen {
			p.order = append(p.order, t)
			p.output[t] = nil
			p.started[t] = ev.Time
		}
		p.running[ev.Test] = true
		if s.verbose && t == ev.Test {
			fmt.Fprintf(s.out, "  RUN   %s (%s)\n", ev.Test, shortPkg(ev.Package))
		}
	case "output":
		p.output[t] = append(p.output[t], ev.Output)
	case "pass", "fail", "skip":
		delete(p.running, ev.Test)
		verb := map[string]string{"pass": "PASS", "fail": "FAIL", "skip": "SKIP"}[ev.Action]
		switch ev.Action {
		case "pass":
			s.counts.Passed++
			p.counts.Passed++
		case "skip":
			s.counts.Skipped++
			p.counts.Skipped++
		case "fail":
			s.counts.Failed++
			p.counts.Failed++
			p.failed = true
			s.failures = append(s.failures, Failure{ev.Package, ev.Test})
		}
		if s.verbose {
			indent := "  "
			if t != ev.Test {
				indent = "      "
			}
			fmt.Fprintf(s.out, "%s%s  %s (%.2fs)\n", indent, verb, ev.Test, ev.Elapsed)
		}
		if ev.Action == "fail" && t == ev.Test {
			s.dump(fmt.Sprintf("--- output of the failed test %s (%s) ---", ev.Test, shortPkg(ev.Package)), p.output[t])
			s.daemonLogs(ev.Test, p.started[t], ev.Time)
		}
		if t == ev.Test {
			delete(p.output, t) // done with it
		}
	}
}

// endPackage prints the package's line and what failed outside its tests.
func (s *summary) endPackage(ev event, p *pkgState) {
	name := shortPkg(ev.Package)
	// Tests that started and never ended: a panic, os.Exit or a timeout
	// took the package down while they ran.
	var unfinished []string
	for test := range p.running {
		unfinished = append(unfinished, test)
	}
	slices.Sort(unfinished)
	for _, test := range unfinished {
		s.counts.Failed++
		p.counts.Failed++
		s.failures = append(s.failures, Failure{ev.Package, test})
		if top(test) == test {
			s.dump(fmt.Sprintf("--- output of the test %s (%s), which never ended ---", test, name), p.output[test])
			end := ev.Time
			if end.IsZero() {
				end = time.Now()
			}
			s.daemonLogs(test, p.started[test], end)
		}
	}
	hadFailure := p.failed || len(unfinished) > 0
	if ev.Action == "fail" && !hadFailure {
		s.counts.Failed++
		p.counts.Failed++
		s.failures = append(s.failures, Failure{ev.Package, "-"})
	}
	if ev.Action == "fail" && !p.failed {
		s.dump(fmt.Sprintf("--- %s failed; its output outside tests ---", name), p.own)
	}
	status := "ok  "
	if ev.Action == "fail" {
		status = "FAIL"
	}
	c := p.counts
	if ev.Action == "skip" && c == (Counts{}) {
		fmt.Fprintf(s.out, "%s %s (no tests)\n", status, name)
	} else {
		fmt.Fprintf(s.out, "%s %s: %d passed, %d failed, %d skipped (%.1fs)\n", status, name, c.Passed, c.Failed, c.Skipped, ev.Elapsed)
	}
	delete(s.pkgs, ev.Package)
}

// finish accounts for packages whose end never came (go test killed).
func (s *summary) finish() {
	names := make([]string, 0, len(s.pkgs))
	for n, p := range s.pkgs {
		if len(p.running) > 0 || len(p.order) > 0 {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	for _, n := range names {
		s.endPackage(event{Action: "fail", Package: n}, s.pkgs[n])
	}
}

// maxLogLines bounds what one daemon log contributes for one failure.
const maxLogLines = 60

// daemonLogs prints what each daemon log in logDir says between from and
// to (a second of slack either side), the last maxLogLines lines of it.
func (s *summary) daemonLogs(test string, from, to time.Time) {
	if s.logDir == "" || from.IsZero() {
		return
	}
	var files []string
	for _, pat := range []string{"NetworkManager*.log", "libvirtd*.log"} {
		m, _ := filepath.Glob(filepath.Join(s.logDir, pat))
		files = append(files, m...)
	}
	for _, f := range files {
		lines, n := linesBetween(f, from.Add(-time.Second), to.Add(time.Second))
		if n == 0 {
			continue
		}
		title := fmt.Sprintf("--- %s while %s ran (%d lines", filepath.Base(f), test, n)
		if n > len(lines) {
			title += fmt.Sprintf(", the last %d", len(lines))
		}
		s.dump(title+") ---", lines)
	}
}

// nmStamp and libvirtStamp find the time at the start of a NetworkManager
// ("<info>  [1795504452.2444] ...") and a libvirtd ("2026-11-24
// 07:14:12.256+0000: ...") log line.
var (
	nmStamp      = regexp.MustCompile(`^<\w+>\s+\[(\d+)\.(\d+)\]`)
	libvirtStamp = regexp.MustCompile(`^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+[+-]\d{4}):`)
)

func stampOf(line string) (time.Time, bool) {
	if m := nmStamp.FindStringSubmatch(line); m != nil {
		sec, err1 := strconv.ParseInt(m[1], 10, 64)
		frac, err2 := strconv.ParseFloat("0."+m[2], 64)
		if err1 == nil && err2 == nil {
			return time.Unix(sec, int64(frac*1e9)), true
		}
	}
	if m := libvirtStamp.FindStringSubmatch(line); m != nil {
		if t, err := time.Parse("2006-01-02 15:04:05.000-0700", m[1]); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// linesBetween returns the last maxLogLines lines of file stamped within
// [from, to] (an unstamped line goes with the line before it), and how many
// there were.
func linesBetween(file string, from, to time.Time) ([]string, int) {
	f, err := os.Open(file)
	if err != nil {
		return nil, 0
	}
	defer f.Close()
	var ring []string
	n := 0
	in := false
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Text()
		if t, ok := stampOf(line); ok {
			in = !t.Before(from) && !t.After(to)
		}
		if !in {
			continue
		}
		n++
		ring = append(ring, line)
		if len(ring) > maxLogLines {
			ring = ring[1:]
		}
	}
	return ring, n
}

func (s *summary) dump(title string, lines []string) {
	fmt.Fprintln(s.out, title)
	for _, l := range lines {
		io.WriteString(s.out, l)
		if !strings.HasSuffix(l, "\n") {
			io.WriteString(s.out, "\n")
		}
	}
	fmt.Fprintln(s.out, strings.Repeat("-", len(title)))
}

// run reads the stream and returns the summary.
func run(in io.Reader, out io.Writer, verbose bool, logDir string) (*summary, error) {
	s := newSummary(out, verbose)
	s.logDir = logDir
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		s.line(sc.Text())
	}
	s.finish()
	return s, sc.Err()
}

func appendTo(path, text string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	_, err = io.WriteString(f, text)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func main() {
	verbose := flag.Bool("v", false, "a line as each top-level test starts and ends, and as each subtest ends")
	tally := flag.String("tally", "", "append \"PASSED FAILED SKIPPED\" to this file")
	failures := flag.String("failures", "", "append one \"PACKAGE TEST\" line per failure to this file")
	logDir := flag.String("logs", "", "the lab's log directory: show what its daemons logged while a failed test ran")
	flag.Parse()
	s, err := run(os.Stdin, os.Stdout, *verbose, *logDir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testsummary:", err)
		s.counts.Failed++
	}
	if *tally != "" {
		if err := appendTo(*tally, fmt.Sprintf("%d %d %d\n", s.counts.Passed, s.counts.Failed, s.counts.Skipped)); err != nil {
			fmt.Fprintln(os.Stderr, "testsummary:", err)
			os.Exit(2)
		}
	}
	if *failures != "" && len(s.failures) > 0 {
		var b strings.Builder
		for _, f := range s.failures {
			fmt.Fprintf(&b, "%s %s\n", f.Package, f.Test)
		}
		if err := appendTo(*failures, b.String()); err != nil {
			fmt.Fprintln(os.Stderr, "testsummary:", err)
			os.Exit(2)
		}
	}
	if s.counts.Failed > 0 {
		os.Exit(1)
	}
}

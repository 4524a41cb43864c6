package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A stream as `go test -json` writes it: a package whose tests pass, fail
// (in a subtest) and skip; a package that fails outside its tests; one
// whose test never ends; and a package without tests.
const stream = `{"Action":"start","Package":"m/a"}
{"Action":"run","Package":"m/a","Test":"TestOK"}
{"Action":"output","Package":"m/a","Test":"TestOK","Output":"=== RUN   TestOK\n"}
{"Action":"output","Package":"m/a","Test":"TestOK","Output":"    a_test.go:5: chatter of a passing test\n"}
{"Action":"pass","Package":"m/a","Test":"TestOK","Elapsed":0.01}
{"Action":"run","Package":"m/a","Test":"TestBad"}
{"Action":"run","Package":"m/a","Test":"TestBad/sub1"}
{"Action":"pass","Package":"m/a","Test":"TestBad/sub1","Elapsed":0}
{"Action":"run","Package":"m/a","Test":"TestBad/sub2"}
{"Action":"output","Package":"m/a","Test":"TestBad/sub2","Output":"    a_test.go:9: the reason it failed\n"}
{"Action":"fail","Package":"m/a","Test":"TestBad/sub2","Elapsed":0}
{"Action":"fail","Package":"m/a","Test":"TestBad","Elapsed":0.02}
{"Action":"run","Package":"m/a","Test":"TestSkip"}
{"Action":"skip","Package":"m/a","Test":"TestSkip","Elapsed":0}
{"Action":"output","Package":"m/a","Output":"FAIL\n"}
{"Action":"fail","Package":"m/a","Elapsed":0.1}
{"ImportPath":"m/b [m/b.test]","Action":"build-output","Output":"b_test.go:3:2: undefined: x\n"}
{"ImportPath":"m/b [m/b.test]","Action":"build-fail"}
{"Action":"start","Package":"m/b"}
{"Action":"output","Package":"m/b","Output":"FAIL\tm/b [build failed]\n"}
{"Action":"fail","Package":"m/b","Elapsed":0,"FailedBuild":"m/b [m/b.test]"}
{"Action":"run","Package":"m/c","Test":"TestHangs"}
{"Action":"output","Package":"m/c","Test":"TestHangs","Output":"panic: test timed out after 1s\n"}
{"Action":"output","Package":"m/c","Output":"FAIL\tm/c\t1.0s\n"}
{"Action":"fail","Package":"m/c","Elapsed":1}
{"Action":"skip","Package":"m/d"}
not json at all
`

func TestCountsAndFailures(t *testing.T) {
	var out strings.Builder
	s, err := run(strings.NewReader(stream), &out, true, "")
	if err != nil {
		t.Fatal(err)
	}
	got := out.String()
	t.Log(got)
	// TestOK, TestBad/sub1 pass; TestBad/sub2, TestBad fail; TestSkip
	// skips; m/b fails outside its tests; TestHangs never ends.
	if want := (Counts{Passed: 2, Failed: 4, Skipped: 1}); s.counts != want {
		t.Errorf("counts %+v, want %+v", s.counts, want)
	}
	wantFail := []Failure{{"m/a", "TestBad/sub2"}, {"m/a", "TestBad"}, {"m/b", "-"}, {"m/c", "TestHangs"}}
	if len(s.failures) != len(wantFail) {
		t.Fatalf("failures %v, want %v", s.failures, wantFail)
	}
	for i := range wantFail {
		if s.failures[i] != wantFail[i] {
			t.Errorf("failure %d: %v, want %v", i, s.failures[i], wantFail[i])
		}
	}
	for _, want := range []string{
		"  RUN   TestOK (m/a)", "  PASS  TestOK (0.01s)", "      FAIL  TestBad/sub2", "  FAIL  TestBad (0.02s)",
		"the reason it failed", "undefined: x", "panic: test timed out", "never ended",
		"FAIL m/a: 2 passed, 2 failed, 1 skipped", "FAIL m/b", "ok   m/d (no tests)", "not json at all",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if strings.Contains(got, "m/a failed; its output outside tests") {
		t.Errorf("a package whose tests explain its failure had its own output printed")
	}
	if strings.Contains(got, "chatter of a passing test") {
		t.Errorf("a passing test's output was printed")
	}
}

// Without -v only packages and failures are printed.
func TestQuiet(t *testing.T) {
	var out strings.Builder
	run(strings.NewReader(stream), &out, false, "")
	if strings.Contains(out.String(), "RUN") || strings.Contains(out.String(), "PASS  TestOK") {
		t.Errorf("quiet mode printed tests:\n%s", out.String())
	}
}

// With the lab's log directory, a failed test's output is followed by what
// NetworkManager and libvirtd logged while it ran, and nothing from a DHCP
// client's log.
func TestDaemonLogsOfFailedTest(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// 1795504400 is 2026-11-24T07:13:20Z.
	write("NetworkManager.log", "<info>  [1795504300.1000] before the test\n"+
		"<warn>  [1795504401.5000] device (up-x): during the test\n"+
		"   a continuation line\n"+
		"<info>  [1795504500.0000] after the test\n")
	write("libvirtd.log", "2026-11-24 07:11:00.000+0000: 9: error : before\n"+
		"2026-11-24 07:13:22.123+0000: 9: error : virNetworkCreateXML failed during the test\n")
	write("dhcp-g1.log", "dhcpcd: during the test, but not a daemon's log\n")
	stream := `{"Time":"2026-11-24T07:13:20Z","Action":"run","Package":"m/e","Test":"TestLab"}
{"Time":"2026-11-24T07:13:21Z","Action":"output","Package":"m/e","Test":"TestLab","Output":"    e_test.go:1: network did not move\n"}
{"Time":"2026-11-24T07:13:23Z","Action":"fail","Package":"m/e","Test":"TestLab","Elapsed":3}
{"Time":"2026-11-24T07:13:23Z","Action":"fail","Package":"m/e","Elapsed":3}
`
	var out strings.Builder
	run(strings.NewReader(stream), &out, true, dir)
	got := out.String()
	t.Log(got)
	for _, want := range []string{"network did not move", "NetworkManager.log while TestLab ran (2 lines)",
		"during the test", "a continuation line", "libvirtd.log while TestLab ran (1 lines)", "virNetworkCreateXML failed"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	for _, bad := range []string{"before the test", "after the test", "error : before", "dhcpcd"} {
		if strings.Contains(got, bad) {
			t.Errorf("output has %q", bad)
		}
	}
}

package main

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runCLI runs the command in-process and returns exit code, stdout, stderr.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(&runEnv{stdout: &out, stderr: &errb, stdin: strings.NewReader("")}, args)
	return code, out.String(), errb.String()
}

// stateFlags keep every test away from /var/lib and /var/cache.
func stateFlags(t *testing.T) []string {
	d := t.TempDir()
	return []string{"--state-dir", filepath.Join(d, "state"), "--cache-dir", filepath.Join(d, "cache")}
}

func TestHelpTellsEveryCommand(t *testing.T) {
	code, out, _ := runCLI(t, "--help")
	if code != exitOK {
		t.Fatalf("--help exit %d", code)
	}
	for name := range commands {
		if !strings.Contains(out, name) {
			t.Errorf("--help does not list %s", name)
		}
		code, sub, _ := runCLI(t, name, "--help")
		if code != exitOK || !strings.Contains(sub, "Usage: vnetguard "+name) {
			t.Errorf("%s --help: exit %d, output %q", name, code, sub)
		}
	}
	if code, _, _ := runCLI(t, "frobnicate"); code != exitError {
		t.Errorf("unknown command exit %d, want 2", code)
	}
	if code, _, _ := runCLI(t, "check", "--no-such-flag"); code != exitError {
		t.Errorf("unknown flag exit %d, want 2", code)
	}
}

func TestValidate(t *testing.T) {
	if code, _, errs := runCLI(t, "validate", "testdata/default.xml", "testdata/dual.xml"); code != exitOK {
		t.Fatalf("valid files: exit %d: %s", code, errs)
	}
	code, _, errs := runCLI(t, "validate", "testdata/default.xml", "testdata/invalid.xml")
	if code != exitFound {
		t.Fatalf("invalid file: exit %d, want 1", code)
	}
	lines := strings.Split(strings.TrimSpace(errs), "\n")
	if len(lines) < 2 {
		t.Fatalf("want a line per problem (netmask+prefix, range order), got %q", errs)
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "testdata/invalid.xml") {
			t.Errorf("problem not prefixed with its file: %q", l)
		}
	}
	code, out, _ := runCLI(t, "validate", "--json", "testdata/default.xml", "testdata/invalid.xml")
	var res []struct {
		File     string
		Valid    bool
		Problems []struct{ Element, Rule string }
	}
	if code != exitFound || json.Unmarshal([]byte(out), &res) != nil || len(res) != 2 || !res[0].Valid || res[1].Valid || len(res[1].Problems) < 2 {
		t.Errorf("--json: exit %d, %s", code, out)
	}
	if code, _, _ := runCLI(t, "validate"); code != exitError {
		t.Errorf("no files: exit %d, want 2", code)
	}
	if code, _, _ := runCLI(t, "validate", "testdata/missing.xml"); code != exitError {
		t.Errorf("missing file: exit %d, want 2", code)
	}
	bad := filepath.Join(t.TempDir(), "bad.xml")
	os.WriteFile(bad, []byte("<network><name>x</name"), 0o644)
	if code, _, errs := runCLI(t, "validate", bad); code != exitFound || !strings.Contains(errs, bad) {
		t.Errorf("malformed XML: exit %d, stderr %q", code, errs)
	}
}

func TestCheckAgainstSavedHostState(t *testing.T) {
	code, out, errs := runCLI(t, "check", "--host-state", "testdata/hotel.json", "--network", "testdata/default.xml")
	if code != exitFound {
		t.Fatalf("exit %d, want 1: %s %s", code, out, errs)
	}
	if !strings.Contains(out, "wlp2s0") {
		t.Errorf("conflict with the hotel wifi not reported: %q", out)
	}
	if strings.Contains(out, "virbr0") {
		t.Errorf("the network's own bridge reported as a conflict: %q", out)
	}
	// A /24 inside a /16 VPN route in a policy table.
	code, out, _ = runCLI(t, "check", "--host-state", "testdata/hotel.json", "--network", "testdata/dual.xml", "--json")
	if code != exitFound {
		t.Fatalf("dual: exit %d, want 1", code)
	}
	var found []struct {
		Network string
		Subnet  netip.Prefix
		Table   int
		Host    netip.Prefix
	}
	if err := json.Unmarshal([]byte(out), &found); err != nil {
		t.Fatalf("--json output: %v: %s", err, out)
	}
	if len(found) != 1 || found[0].Table != 51820 || found[0].Subnet != netip.MustParsePrefix("10.77.0.0/24") {
		t.Fatalf("want one clash with table 51820, got %+v", found)
	}
	if code, out, _ := runCLI(t, "check", "--host-state", "testdata/quiet.json", "--network", "testdata"); code != exitError {
		// testdata holds invalid.xml: the check refuses rather than guess.
		t.Fatalf("directory with an invalid file: exit %d (%s), want 2", code, out)
	}
}

func TestCheckNoConflictAndErrors(t *testing.T) {
	if code, out, errs := runCLI(t, "check", "--host-state", "testdata/quiet.json", "--network", "testdata/default.xml", "--network", "testdata/dual.xml"); code != exitOK {
		t.Fatalf("quiet host: exit %d: %s %s", code, out, errs)
	}
	if code, _, _ := runCLI(t, "check", "--host-state", "testdata/quiet.json"); code != exitError {
		t.Errorf("no networks: want 2")
	}
	if code, _, _ := runCLI(t, "check", "--host-state", "testdata/missing.json", "--network", "testdata/default.xml"); code != exitError {
		t.Errorf("missing host state: want 2")
	}
	if code, _, _ := runCLI(t, "check", "--host-state", "testdata/default.xml", "--network", "testdata/default.xml"); code != exitError {
		t.Errorf("host state that is not JSON: want 2")
	}
}

func TestPickDirection(t *testing.T) {
	cases := map[string]string{"no": "192.168.253.0/24", "yes": "192.168.2.0/24"}
	for hv, want := range cases {
		args := append([]string{"pick", "--host-state", "testdata/quiet.json", "--hypervisor", hv}, stateFlags(t)...)
		code, out, errs := runCLI(t, args...)
		if code != exitOK || strings.TrimSpace(out) != want {
			t.Errorf("--hypervisor %s: exit %d out %q err %q, want %s", hv, code, out, errs, want)
		}
	}
	args := append([]string{"pick", "--host-state", "testdata/quiet.json", "--hypervisor", "no", "--avoid", "testdata/default.xml", "--reserve", "192.168.253.0/24", "--json"}, stateFlags(t)...)
	code, out, _ := runCLI(t, args...)
	var res pickResult
	if code != exitOK || json.Unmarshal([]byte(out), &res) != nil {
		t.Fatalf("json pick: exit %d %q", code, out)
	}
	if res.Subnet != netip.MustParsePrefix("192.168.252.0/24") || res.Direction != "down" {
		t.Errorf("with 253 reserved want 192.168.252.0/24 down, got %+v", res)
	}
	if code, _, _ := runCLI(t, "pick", "--host-state", "testdata/quiet.json", "--prefix", "99"); code != exitError {
		t.Errorf("absurd prefix: want exit 2")
	}
	if code, _, _ := runCLI(t, "pick", "--host-state", "testdata/quiet.json", "--family", "ipx"); code != exitError {
		t.Errorf("bad family: want exit 2")
	}
}

func TestPickForNetworkKeepsFreeCurrentSubnet(t *testing.T) {
	args := append([]string{"pick", "--host-state", "testdata/quiet.json", "--hypervisor", "no", "--network", "testdata/default.xml"}, stateFlags(t)...)
	code, out, errs := runCLI(t, args...)
	if code != exitOK || strings.TrimSpace(out) != "192.168.122.0/24" {
		t.Fatalf("free current subnet should be kept: exit %d out %q err %q", code, out, errs)
	}
	args = append([]string{"pick", "--host-state", "testdata/hotel.json", "--hypervisor", "no", "--network", "testdata/default.xml"}, stateFlags(t)...)
	code, out, _ = runCLI(t, args...)
	if code != exitOK || strings.TrimSpace(out) != "192.168.254.0/24" {
		t.Fatalf("clashing current subnet must be left: exit %d out %q", code, out)
	}
}

func TestPickIPv6UsesRememberedULA(t *testing.T) {
	flags := stateFlags(t)
	args := append([]string{"pick", "--family", "ipv6", "--host-state", "testdata/quiet.json"}, flags...)
	code, out, errs := runCLI(t, args...)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	p := netip.MustParsePrefix(strings.TrimSpace(out))
	ula, err := os.ReadFile(filepath.Join(flags[1], "ula-prefix"))
	if err != nil {
		t.Fatal(err)
	}
	u := netip.MustParsePrefix(strings.TrimSpace(string(ula)))
	if p.Bits() != 64 || !u.Overlaps(p) {
		t.Fatalf("picked %s, not a /64 of the host's ULA %s", p, u)
	}
	_, again, _ := runCLI(t, args...)
	if again != out {
		t.Fatalf("second pick differs: %s vs %s", again, out)
	}
}

func TestRenumberDryRunExplicit(t *testing.T) {
	orig, _ := os.ReadFile("testdata/default.xml")
	code, out, errs := runCLI(t, "renumber", "--dry-run", "--file", "testdata/default.xml", "--ipv4", "192.168.200.0/24", "--host-state", "testdata/quiet.json")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	want := strings.NewReplacer("192.168.122.", "192.168.200.").Replace(string(orig))
	if out != want {
		t.Fatalf("output differs from a pure address change:\n%s", out)
	}
	if b, _ := os.ReadFile("testdata/default.xml"); !bytes.Equal(b, orig) {
		t.Fatal("dry run modified the file")
	}
	if code, _, _ := runCLI(t, "renumber", "--dry-run", "--file", "testdata/default.xml", "--ipv6", "fd00:1::/64", "--host-state", "testdata/quiet.json"); code != exitError {
		t.Errorf("moving a family the network lacks: want exit 2")
	}
	if code, _, _ := runCLI(t, "renumber", "--dry-run", "--file", "testdata/default.xml", "--ipv4", "not-a-cidr"); code != exitError {
		t.Errorf("bad CIDR: want exit 2")
	}
}

func TestRenumberDryRunAutomatic(t *testing.T) {
	args := append([]string{"renumber", "--dry-run", "--file", "testdata/default.xml", "--host-state", "testdata/hotel.json", "--hypervisor", "no"}, stateFlags(t)...)
	code, out, errs := runCLI(t, args...)
	if code != exitFound { // a dry run that found a clash
		t.Fatalf("exit %d, want 1: %s", code, errs)
	}
	if !strings.Contains(out, "address='192.168.254.1'") || !strings.Contains(out, "start='192.168.254.2'") || strings.Contains(out, "192.168.122.") {
		t.Fatalf("not moved to 192.168.254.0/24:\n%s", out)
	}
	// Nothing clashes: the definition comes out unchanged, and stderr says so.
	args = append([]string{"renumber", "--dry-run", "--file", "testdata/default.xml", "--host-state", "testdata/quiet.json"}, stateFlags(t)...)
	code, out, errs = runCLI(t, args...)
	orig, _ := os.ReadFile("testdata/default.xml")
	if code != exitOK || out != string(orig) || !strings.Contains(errs, "no conflict") {
		t.Fatalf("no-conflict dry run: exit %d err %q", code, errs)
	}
}

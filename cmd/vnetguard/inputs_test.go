package main

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Issue 8 item 2: a --prefix that cannot hold a network is refused, 0
// included (it used to mean "the default" and return a /24).
func TestPickRejectsPrefixesThatHoldNoNetwork(t *testing.T) {
	for _, c := range []struct{ family, prefix string }{
		{"ipv4", "0"}, {"ipv4", "7"}, {"ipv4", "31"}, {"ipv4", "-1"},
		{"ipv6", "0"}, {"ipv6", "48"},
	} {
		args := append([]string{"pick", "--host-state", "testdata/quiet.json", "--family", c.family, "--prefix", c.prefix}, stateFlags(t)...)
		code, out, errs := runCLI(t, args...)
		if code != exitError || !strings.Contains(errs, "--prefix "+c.prefix) {
			t.Errorf("%s --prefix %s: exit %d, out %q, err %q; want 2 and an error naming --prefix", c.family, c.prefix, code, out, errs)
		}
	}
	args := append([]string{"pick", "--host-state", "testdata/quiet.json", "--hypervisor", "no", "--prefix", "16"}, stateFlags(t)...)
	if code, out, errs := runCLI(t, args...); code != exitOK || !strings.HasSuffix(strings.TrimSpace(out), "/16") {
		t.Errorf("--prefix 16: exit %d %q %q", code, out, errs)
	}
}

// Issue 8 item 2: prefix='0' in the XML is libvirt's "not given" (the
// classful length for IPv4, /64 for IPv6), not 0.0.0.0/0 clashing with
// everything. netdef reads it so; this checks the whole path through check.
func TestCheckReadsXMLPrefixZeroAsNotGiven(t *testing.T) {
	dir := t.TempDir()
	net := writeNetwork(t, dir, "pz", `<ip address='192.168.50.1' prefix='0'/><ip family='ipv6' address='fd00:1::1' prefix='0'/>`)
	// A host with addresses in other /24s and /64s than the network's,
	// which a /0 would cover.
	host := writeFile(t, "host.json", `{"addresses": [
		{"prefix": "192.168.1.20/24", "interface": "eth0"},
		{"prefix": "fd00:1:0:1::5/64", "interface": "eth0"}], "routes": []}`)
	code, out, errs := runCLI(t, "check", "--host-state", host, "--network", net, "--json")
	if code != exitOK || strings.TrimSpace(out) != "[]" {
		t.Fatalf("prefix='0' read as /0: exit %d %s %s", code, out, errs)
	}
	// And the subnets are the classful /24 and the /64: a host address
	// inside them clashes.
	host = writeFile(t, "host.json", `{"addresses": [
		{"prefix": "192.168.50.7/24", "interface": "eth0"},
		{"prefix": "fd00:1::7/64", "interface": "eth0"}], "routes": []}`)
	_, out, _ = runCLI(t, "check", "--host-state", host, "--network", net, "--json")
	var found []struct{ Subnet netip.Prefix }
	if err := json.Unmarshal([]byte(out), &found); err != nil || len(found) != 2 ||
		found[0].Subnet != netip.MustParsePrefix("192.168.50.0/24") || found[1].Subnet != netip.MustParsePrefix("fd00:1::/64") {
		t.Fatalf("want clashes on 192.168.50.0/24 and fd00:1::/64, got %v %s", err, out)
	}
}

// Issue 8 item 3: two given networks on one subnet are a conflict.
func TestCheckReportsNetworksOverlappingEachOther(t *testing.T) {
	dir := t.TempDir()
	writeNetwork(t, dir, "a", `<ip address='192.168.100.1' prefix='24'/>`)
	writeNetwork(t, dir, "b", `<ip address='192.168.100.2' prefix='25'/>`)
	code, out, errs := runCLI(t, "check", "--host-state", "testdata/quiet.json", "--network", dir)
	if code != exitFound {
		t.Fatalf("overlapping networks: exit %d, want 1: %s %s", code, out, errs)
	}
	for _, want := range []string{"a: 192.168.100.0/24", "virtual network b", "b: 192.168.100.0/25", "virtual network a"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	_, out, _ = runCLI(t, "check", "--host-state", "testdata/quiet.json", "--network", dir, "--json")
	var found []struct{ Network, Kind string }
	if err := json.Unmarshal([]byte(out), &found); err != nil || len(found) != 2 || found[0].Kind != "network" {
		t.Fatalf("--json: %v %s", err, out)
	}
	// The same file named twice is one network, not an overlap.
	if code, out, _ := runCLI(t, "check", "--host-state", "testdata/quiet.json", "--network", "testdata/default.xml", "--network", "./testdata/default.xml"); code != exitOK {
		t.Errorf("one file named twice: exit %d %s", code, out)
	}
}

// Issue 8 item 6: validate takes directories as check does.
func TestValidateTakesDirectories(t *testing.T) {
	dir := t.TempDir()
	writeNetwork(t, dir, "a", `<ip address='192.168.100.1' prefix='24'/>`)
	writeNetwork(t, dir, "b", `<ip address='192.168.101.1' prefix='24'/>`)
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("not a network"), 0o644)
	code, out, errs := runCLI(t, "validate", "--json", dir)
	var res []fileResult
	if code != exitOK || json.Unmarshal([]byte(out), &res) != nil || len(res) != 2 || res[0].File != filepath.Join(dir, "a.xml") {
		t.Fatalf("validate DIR: exit %d %s %s", code, out, errs)
	}
	if code, _, errs := runCLI(t, "validate", "testdata"); code != exitFound || !strings.Contains(errs, "invalid.xml") {
		t.Errorf("validate testdata (holds invalid.xml): exit %d %s", code, errs)
	}
	if code, _, errs := runCLI(t, "validate", t.TempDir()); code != exitError || !strings.Contains(errs, "no *.xml") {
		t.Errorf("empty directory: exit %d %s", code, errs)
	}
}

// Issue 8 item 6: with one argument missing, validate --json still prints
// every verdict, the missing one with an error, and exits 2.
func TestValidateJSONReportsMissingArgument(t *testing.T) {
	code, out, errs := runCLI(t, "validate", "--json", "testdata/default.xml", "testdata/missing.xml", "testdata/invalid.xml")
	var res []fileResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("no JSON: %v: %q", err, out)
	}
	if code != exitError || len(res) != 3 || !res[0].Valid || res[1].Error == "" || res[1].Valid || res[2].Valid || res[2].Error != "" {
		t.Fatalf("exit %d, %+v", code, res)
	}
	if !strings.Contains(errs, "testdata/missing.xml") {
		t.Errorf("stderr does not name the missing file: %q", errs)
	}
}

// Issue 8 item 6: renumber --dry-run --file DIR handles every network in
// it: --json lists them all, moved apart; plain output, which holds one
// definition, refuses rather than drop one.
func TestRenumberDryRunDirectory(t *testing.T) {
	dir := t.TempDir()
	// Both clash with the hotel wifi (192.168.122.0/24); c clashes with a.
	writeNetwork(t, dir, "a", `<ip address='192.168.122.1' prefix='24'/>`)
	writeNetwork(t, dir, "b", `<ip address='192.168.122.1' prefix='24'/>`)
	writeNetwork(t, dir, "c", `<ip address='192.168.60.1' prefix='24'/>`)
	writeNetwork(t, dir, "d", `<ip address='192.168.60.129' prefix='25'/>`)
	args := append([]string{"renumber", "--dry-run", "--file", dir, "--host-state", "testdata/hotel.json", "--hypervisor", "no"}, stateFlags(t)...)
	code, out, errs := runCLI(t, args...)
	if code != exitError || out != "" || !strings.Contains(errs, "--json") || !strings.Contains(errs, "a, b, c, d") {
		t.Fatalf("several networks without --json: exit %d, out %q, err %q", code, out, errs)
	}
	code, out, errs = runCLI(t, append(args, "--json")...)
	var res []fileRenumber
	if err := json.Unmarshal([]byte(out), &res); err != nil || len(res) != 4 {
		t.Fatalf("--json: exit %d, %v, %s %s", code, err, out, errs)
	}
	if code != exitFound {
		t.Errorf("clashes found: exit %d, want 1", code)
	}
	var subnets []netip.Prefix
	for _, r := range res {
		d, err := parseDefinition(r.XML)
		if err != nil {
			t.Fatalf("%s: edited XML: %v", r.Network, err)
		}
		subnets = append(subnets, d...)
	}
	for i := range subnets {
		if subnets[i].Overlaps(netip.MustParsePrefix("192.168.122.0/24")) {
			t.Errorf("%s still on the hotel's subnet: %s", res[i].Network, subnets[i])
		}
		for j := range i {
			if subnets[i].Overlaps(subnets[j]) {
				t.Errorf("%s (%s) and %s (%s) overlap after the renumber", res[i].Network, subnets[i], res[j].Network, subnets[j])
			}
		}
	}
	if len(res[2].Moves) != 0 || len(res[3].Moves) != 1 {
		t.Errorf("c was first on 192.168.60.0/24: only d moves: %+v %+v", res[2], res[3])
	}
	// A definition with no plan is reported in its entry, the others
	// are still done, and the run exits 2.
	code, out, errs = runCLI(t, append(args, "--json", "--reserve", "0.0.0.0/0")...)
	res = nil
	if err := json.Unmarshal([]byte(out), &res); err != nil || len(res) != 4 || code != exitError {
		t.Fatalf("no room at all: exit %d, %v, %s %s", code, err, out, errs)
	}
	if res[0].Error == "" || len(res[0].Moves) != 0 || !strings.Contains(res[0].XML, "192.168.122.1") || !strings.Contains(errs, "a.xml") {
		t.Errorf("a, with nowhere to go: %+v, stderr %q", res[0], errs)
	}
	if res[2].Error != "" || len(res[2].Conflicts) != 0 {
		t.Errorf("c, with no clash, is fine: %+v", res[2])
	}
	// --ipv4 names one network's subnet: refused for several.
	if code, _, errs := runCLI(t, append(args, "--json", "--ipv4", "10.9.9.0/24")...); code != exitError || !strings.Contains(errs, "name one file") {
		t.Errorf("--ipv4 with a directory: exit %d %s", code, errs)
	}
}

// Issue 8 item 6: a flag that names one network refuses a directory of
// several rather than take the first.
func TestPickNetworkDirectoryOfSeveral(t *testing.T) {
	dir := t.TempDir()
	writeNetwork(t, dir, "a", `<ip address='192.168.100.1' prefix='24'/>`)
	writeNetwork(t, dir, "b", `<ip address='192.168.101.1' prefix='24'/>`)
	args := append([]string{"pick", "--host-state", "testdata/quiet.json", "--network", dir}, stateFlags(t)...)
	if code, _, errs := runCLI(t, args...); code != exitError || !strings.Contains(errs, "holds 2 network definitions") {
		t.Errorf("exit %d %s", code, errs)
	}
}

// Issue 8 item 7: subnets with host bits are refused with the canonical
// form named, in every flag that takes a subnet.
func TestNonCanonicalSubnetsRefused(t *testing.T) {
	cases := [][]string{
		{"renumber", "--dry-run", "--file", "testdata/default.xml", "--host-state", "testdata/quiet.json", "--ipv4", "10.20.30.5/24"},
		{"renumber", "--dry-run", "--file", "testdata/dual.xml", "--host-state", "testdata/quiet.json", "--ipv6", "fd00:1::1/64"},
		{"pick", "--host-state", "testdata/quiet.json", "--reserve", "192.168.253.7/24"},
		{"renumber", "somenet", "--reserve", "10.20.30.5/24"},
		{"resolve", "--reserve", "10.20.30.5/24"},
		{"status", "--reserve", "10.20.30.5/24"},
	}
	want := map[string]string{"10.20.30.5/24": "10.20.30.0/24", "fd00:1::1/64": "fd00:1::/64", "192.168.253.7/24": "192.168.253.0/24"}
	for _, args := range cases {
		bad := args[len(args)-1]
		code, out, errs := runCLI(t, append(args, stateFlags(t)...)...)
		if code != exitError || out != "" || !strings.Contains(errs, "did you mean "+want[bad]+"?") || !strings.Contains(errs, args[len(args)-2]) {
			t.Errorf("%v: exit %d, out %q, err %q", args, code, out, errs)
		}
	}
}

func TestParseSubnetFlag(t *testing.T) {
	good := map[string]string{"10.20.30.0/24": "10.20.30.0/24", "fd00:1::/64": "fd00:1::/64", "0.0.0.0/0": "0.0.0.0/0", "192.168.1.7/32": "192.168.1.7/32"}
	for in, want := range good {
		if p, err := parseSubnetFlag("--x", in); err != nil || p.String() != want {
			t.Errorf("%s: %v %v", in, p, err)
		}
	}
	bad := map[string]string{
		"10.20.30.5/24":       "did you mean 10.20.30.0/24?",
		"10.20.30.0":          "not a subnet in CIDR form",
		"":                    "not a subnet in CIDR form",
		"10.20.30.0/33":       "not a subnet in CIDR form",
		"::ffff:10.0.0.0/120": "IPv4-mapped",
		"fe80::/64%eth0":      "not a subnet in CIDR form",
	}
	for in, want := range bad {
		if _, err := parseSubnetFlag("--x", in); err == nil || !strings.Contains(err.Error(), want) || !strings.HasPrefix(err.Error(), "--x") {
			t.Errorf("%q: got %v, want an error with %q", in, err, want)
		}
	}
}

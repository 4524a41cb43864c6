//go:build lab

package e2e

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vnetguard/vnetguard/scripts/labkit"
)

// ownNet is a test's view of vnetguard's own networks: its own definitions
// directory and runtime directory, so tests never see each other's.
type ownNet struct {
	dir, run string
	d        dirs
}

func newOwnNet(t *testing.T) ownNet {
	t.Helper()
	base := t.TempDir()
	o := ownNet{dir: filepath.Join(base, "networks"), run: filepath.Join(base, "run"), d: newDirs(t)}
	if err := os.MkdirAll(o.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return o
}

func (o ownNet) env() []string { return []string{"VNETGUARD_NETWORKS_DIR=" + o.dir} }

// net runs `vnetguard net ARGS...` and fails the test unless it exits 0.
func (o ownNet) net(t *testing.T, args ...string) string {
	t.Helper()
	r := vnetguard(t, o.env(), append(append([]string{"net"}, args...), "--lock-dir", o.run)...)
	if r.code != 0 {
		t.Fatalf("vnetguard net %v exited %d: %s", args, r.code, r.stderr)
	}
	return r.stdout
}

// define writes xml, defines it, and undefines it when the test ends.
func (o ownNet) define(t *testing.T, name, xml string) {
	t.Helper()
	o.net(t, "define", writeTemp(t, xml))
	t.Cleanup(func() {
		vnetguard(t, o.env(), "net", "undefine", name, "--lock-dir", o.run)
	})
}

type ownInfo struct {
	Name    string
	Active  bool
	Bridge  string
	Mode    string
	Subnets []netip.Prefix
	DHCP    string
	Profile string
}

func (o ownNet) list(t *testing.T) []ownInfo {
	t.Helper()
	var out []ownInfo
	if err := json.Unmarshal([]byte(o.net(t, "list", "--json")), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// ownXML is a definition: mode "nat" or "" (isolated); v4 like "10.231.0"
// (a /24 with DHCP); v6 like "fd42:0:0:1" (a /64) or "".
func ownXML(name, bridge, mode, v4, v6, policy string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "<network>\n  <name>%s</name>\n", name)
	if policy != "" {
		fmt.Fprintf(&b, "  <metadata>\n    <vnetguard:policy xmlns:vnetguard=\"urn:x-vnetguard:policy:1\" on-conflict=\"%s\"/>\n  </metadata>\n", policy)
	}
	if mode != "" {
		fmt.Fprintf(&b, "  <forward mode='%s'/>\n", mode)
	}
	fmt.Fprintf(&b, "  <bridge name='%s' stp='off' delay='0'/>\n", bridge)
	if v4 != "" {
		fmt.Fprintf(&b, "  <ip address='%[1]s.1' netmask='255.255.255.0'>\n    <dhcp>\n      <range start='%[1]s.100' end='%[1]s.200'/>\n    </dhcp>\n  </ip>\n", v4)
	}
	if v6 != "" {
		fmt.Fprintf(&b, "  <ip family='ipv6' address='%s::1' prefix='64'/>\n", v6)
	}
	b.WriteString("</network>\n")
	return b.String()
}

// vnetguardProfiles lists NetworkManager profiles named vnetguard-*.
func vnetguardProfiles(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, l := range strings.Split(labkit.Run(t, "nmcli", "-t", "-f", "NAME", "connection", "show"), "\n") {
		if strings.HasPrefix(l, "vnetguard-") {
			out = append(out, l)
		}
	}
	return out
}

func linkExists(name string) bool {
	return exec.Command("ip", "link", "show", "dev", name).Run() == nil
}

func nftTables(t *testing.T) string { return labkit.Run(t, "nft", "list", "tables") }

func dnsmasqFor(bridge string) bool {
	return exec.Command("pgrep", "-f", "dnsmasq.*"+bridge).Run() == nil
}

// A nat network with IPv4 and IPv6, realised as a NetworkManager bridge
// profile: a guest gets a DHCPv4 lease and a SLAAC address and reaches an
// upstream router through NAT; stop and undefine remove every profile,
// device, table and process vnetguard (and NetworkManager for it) made.
func TestOwnNetNATLifecycle(t *testing.T) {
	labkit.Require(t)
	o := newOwnNet(t)
	const name, br = "ownnat", "ownbr1"
	v4, v6 := netip.MustParsePrefix("10.231.0.0/24"), netip.MustParsePrefix("fd42:0:0:1::/64")
	o.define(t, name, ownXML(name, br, "nat", "10.231.0", "fd42:0:0:1", ""))

	if got := vnetguardProfiles(t); len(got) != 1 || got[0] != "vnetguard-"+name {
		t.Fatalf("profiles after define: %v", got)
	}
	if l := o.list(t); len(l) != 1 || l[0].Active || l[0].Bridge != br || l[0].DHCP != "shared" {
		t.Fatalf("net list after define: %+v", l)
	}
	methods := labkit.Run(t, "nmcli", "-g", "ipv4.method,ipv6.method,ipv4.addresses,ipv6.addresses,bridge.stp", "connection", "show", "vnetguard-"+name)
	if want := "shared\nshared\n10.231.0.1/24\nfd42\\:0\\:0\\:1\\:\\:1/64\nno\n"; methods != want {
		t.Fatalf("profile settings:\n%s\nwant\n%s", methods, want)
	}

	up := labkit.NewUplink(t, "upnat", "10.235.0.1/24")
	labkit.Run(t, "ip", "addr", "add", "10.235.0.2/24", "dev", up.Name)

	start := time.Now()
	o.net(t, "start", name)
	t.Logf("net start took %v", time.Since(start))
	if l := o.list(t); !l[0].Active {
		t.Fatalf("not active after start: %+v", l)
	}
	tables := nftTables(t)
	if !strings.Contains(tables, "table inet vnetguard") || !strings.Contains(tables, "nm-shared-"+br) {
		t.Fatalf("nft tables after start:\n%s", tables)
	}

	g := labkit.NewGuest(t, "ognat", br)
	t0 := time.Now()
	a4 := g.WaitAddr(t, v4, 30*time.Second)
	t.Logf("DHCPv4 lease %s after %v", a4, time.Since(t0))
	a6 := g.WaitAddr(t, v6, 30*time.Second)
	t.Logf("SLAAC address %s after %v", a6, time.Since(t0))
	if err := g.Ping(t, netip.MustParseAddr("10.235.0.1")); err != nil {
		t.Fatalf("guest cannot reach the upstream router through NAT: %v", err)
	}

	o.net(t, "stop", name)
	if linkExists(br) {
		t.Fatalf("bridge %s still exists after net stop", br)
	}
	if tables := nftTables(t); strings.Contains(tables, "vnetguard") || strings.Contains(tables, br) {
		t.Fatalf("nft tables after stop:\n%s", tables)
	}
	if dnsmasqFor(br) {
		t.Fatalf("a dnsmasq for %s still runs after net stop", br)
	}
	if l := o.list(t); l[0].Active {
		t.Fatalf("still active after stop: %+v", l)
	}

	o.net(t, "undefine", name)
	if got := vnetguardProfiles(t); len(got) != 0 {
		t.Fatalf("profiles after undefine: %v", got)
	}
	if l := o.list(t); len(l) != 0 {
		t.Fatalf("net list after undefine: %+v", l)
	}
	if ents, _ := os.ReadDir(o.dir); len(ents) != 0 {
		t.Fatalf("definitions left: %v", ents)
	}
	if ents, _ := os.ReadDir(filepath.Join(o.run, "networks")); len(ents) != 0 {
		t.Fatalf("live XML left: %v", ents)
	}
}

// An isolated IPv4-only network: IPv6 is off on its bridge, a guest gets
// a lease and reaches the bridge but nothing beyond it; autostart follows
// the profile's autoconnect.
func TestOwnNetIsolated(t *testing.T) {
	labkit.Require(t)
	o := newOwnNet(t)
	const name, br = "ownIso", "ownbr2"
	v4 := netip.MustParsePrefix("10.232.0.0/24")
	o.define(t, name, ownXML(name, br, "", "10.232.0", "", ""))
	o.net(t, "autostart", name)
	if ac := labkit.Run(t, "nmcli", "-g", "connection.autoconnect", "connection", "show", "vnetguard-"+name); ac != "yes\n" {
		t.Fatalf("autoconnect after net autostart: %q", ac)
	}
	o.net(t, "autostart", name, "--disable")
	if ac := labkit.Run(t, "nmcli", "-g", "connection.autoconnect", "connection", "show", "vnetguard-"+name); ac != "no\n" {
		t.Fatalf("autoconnect after net autostart --disable: %q", ac)
	}

	up := labkit.NewUplink(t, "upiso", "10.236.0.1/24")
	labkit.Run(t, "ip", "addr", "add", "10.236.0.2/24", "dev", up.Name)
	o.net(t, "start", name)
	t.Cleanup(func() { vnetguard(t, o.env(), "net", "stop", name, "--lock-dir", o.run) })

	if v, _ := os.ReadFile("/proc/sys/net/ipv6/conf/" + br + "/disable_ipv6"); strings.TrimSpace(string(v)) != "1" {
		t.Fatalf("IPv6 on %s: disable_ipv6=%q, want 1", br, v)
	}
	g := labkit.NewGuest(t, "ogiso", br)
	g.WaitAddr(t, v4, 30*time.Second)
	if err := g.Ping(t, netip.MustParseAddr("10.232.0.1")); err != nil {
		t.Fatalf("guest cannot reach its bridge: %v", err)
	}
	// The host itself forwards (NetworkManager's shared mode turns it on):
	// only vnetguard's drop keeps the guest in.
	if err := g.Ping(t, netip.MustParseAddr("10.236.0.1")); err == nil {
		t.Fatalf("guest of an isolated network reached 10.236.0.1 beyond the bridge")
	}
	rules := labkit.Run(t, "nft", "list", "table", "inet", "vnetguard")
	if !strings.Contains(rules, `iifname "`+br+`" drop`) {
		t.Fatalf("no drop for %s in:\n%s", br, rules)
	}
}

// A clash with a NAT network of vnetguard's own (an address added on an
// uplink with ip addr) makes `vnetguard resolve` renumber it through
// NetworkManager (checkpoint, reapply): the bridge and its port stay, the
// guest re-leases in the new subnet, status lists it with backend nm.
func TestOwnNetRenumberOnClash(t *testing.T) {
	labkit.Require(t)
	o := newOwnNet(t)
	const name, br = "ownren", "ownbr3"
	old4 := netip.MustParsePrefix("10.234.0.0/24")
	o.define(t, name, ownXML(name, br, "nat", "10.234.0", "", "renumber"))
	o.net(t, "start", name)
	t.Cleanup(func() { vnetguard(t, o.env(), "net", "stop", name, "--lock-dir", o.run) })
	g := labkit.NewGuest(t, "ogren", br)
	g.WaitAddr(t, old4, 30*time.Second)
	idx := labkit.Run(t, "cat", "/sys/class/net/"+br+"/ifindex")

	clashingUplink(t, "clren", "10.234.0.5/24")
	flags := o.d.flags("resolve", "--lock-dir", o.run)
	t0 := time.Now()
	r := vnetguard(t, o.env(), flags...)
	t.Logf("resolve took %v", time.Since(t0))
	if r.code != 0 {
		t.Fatalf("resolve exited %d: %s", r.code, r.stderr)
	}
	var st []struct {
		Name        string
		Backend     string
		Active      bool
		LiveSubnets []netip.Prefix `json:"live_subnets"`
	}
	sr := vnetguard(t, o.env(), o.d.flags("status", "--json", "--lock-dir", o.run)...)
	if err := json.Unmarshal([]byte(sr.stdout), &st); err != nil {
		t.Fatalf("status --json: %v", err)
	}
	var new4 netip.Prefix
	for _, s := range st {
		if s.Name == name {
			if s.Backend != "nm" || !s.Active || len(s.LiveSubnets) != 1 {
				t.Fatalf("status of %s: %+v", name, s)
			}
			new4 = s.LiveSubnets[0]
		}
	}
	if !new4.IsValid() || new4.Overlaps(old4) {
		t.Fatalf("network %s not moved off %s: status %s", name, old4, sr.stdout)
	}
	if got := labkit.Run(t, "cat", "/sys/class/net/"+br+"/ifindex"); got != idx {
		t.Fatalf("bridge %s was re-created (ifindex %s -> %s): a reapply keeps it", br, idx, got)
	}
	t1 := time.Now()
	a := g.WaitAddr(t, new4, 30*time.Second)
	t.Logf("guest re-leased %s %v after the renumber", a, time.Since(t1))
	if err := g.Ping(t, bridgeAddr(new4)); err != nil {
		t.Fatalf("guest cannot reach its bridge at %s: %v", bridgeAddr(new4), err)
	}
	if cps := labkit.Run(t, "busctl", "get-property", "org.freedesktop.NetworkManager", "/org/freedesktop/NetworkManager", "org.freedesktop.NetworkManager", "Checkpoints"); strings.TrimSpace(cps) != "ao 0" {
		t.Fatalf("checkpoints left: %s", cps)
	}
	if ents, _ := os.ReadDir(filepath.Join(o.run, "intents")); len(ents) != 0 {
		t.Fatalf("intents left: %v", ents)
	}
}

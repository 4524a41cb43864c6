//go:build lab

package e2e

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vnetguard/vnetguard/scripts/labkit"
)

// dnsmasqXML is a nat network whose DHCP NetworkManager's shared mode
// cannot serve: two IPv4 ranges, a host entry, a DHCPv6 range.
func dnsmasqXML(name, bridge, v4, v6, mac string) string {
	return fmt.Sprintf(`<network>
  <name>%[1]s</name>
  <metadata><vnetguard:policy xmlns:vnetguard="urn:x-vnetguard:policy:1" on-conflict="renumber"/></metadata>
  <forward mode='nat'/>
  <bridge name='%[2]s' stp='off' delay='0'/>
  <dns><host ip='%[3]s.7'><hostname>files</hostname></host></dns>
  <ip address='%[3]s.1' prefix='24'>
    <dhcp>
      <range start='%[3]s.100' end='%[3]s.101'/>
      <range start='%[3]s.150' end='%[3]s.160'/>
      <host mac='%[5]s' ip='%[3]s.5' name='pinned'/>
    </dhcp>
  </ip>
  <ip family='ipv6' address='%[4]s::1' prefix='64'>
    <dhcp><range start='%[4]s::100' end='%[4]s::1ff'/></dhcp>
  </ip>
</network>
`, name, bridge, v4, v6, mac)
}

// dnsmasqPid is the pid of vnetguard's dnsmasq for a network (0: none).
func dnsmasqPid(o ownNet, name string) int {
	b, err := os.ReadFile(filepath.Join(o.run, "dnsmasq", name+".pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		return 0
	}
	cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if !strings.Contains(string(cmd), "dnsmasq") {
		return 0
	}
	return pid
}

// dhcpv6 runs one DHCPv6 exchange in the guest (ISC dhclient -6) and
// returns the address it got in prefix.
func dhcpv6(t *testing.T, g *labkit.Guest, prefix netip.Prefix) netip.Addr {
	t.Helper()
	dir := t.TempDir()
	lf, pf := filepath.Join(dir, "leases6"), filepath.Join(dir, "pid6")
	t.Cleanup(func() {
		if b, err := os.ReadFile(pf); err == nil {
			if pid, _ := strconv.Atoi(strings.TrimSpace(string(b))); pid > 0 {
				syscall.Kill(pid, syscall.SIGTERM)
			}
		}
	})
	// -1: one try (about 10 s of solicits at most); -nw not given, so it
	// returns once it has bound an address.
	out, err := labkit.Try("timeout", "40", "ip", "netns", "exec", g.Name, "dhclient", "-6", "-1", "-v", "-lf", lf, "-pf", pf, g.Name)
	if err != nil {
		t.Fatalf("dhclient -6 in %s: %v\n%s", g.Name, err, out)
	}
	return g.WaitAddr(t, prefix, 10*time.Second)
}

// A nat network with two IPv4 ranges, a DHCP host and a DHCPv6 range takes
// vnetguard's own dnsmasq (shared mode cannot): the pinned guest gets its
// host address, another guest a lease from the ranges, DHCPv6 an address
// from its range, NAT works; a dnsmasq killed behind vnetguard's back is
// started again by the next pass; a clash renumbers the network, dnsmasq
// follows and the pinned guest re-leases its host address in the new
// subnet; net stop leaves no dnsmasq and no file of it.
func TestOwnNetOwnDnsmasq(t *testing.T) {
	labkit.Require(t)
	o := newOwnNet(t)
	const name, br, mac = "owndm", "ownbr7", "52:54:00:7a:00:05"
	v4, v6 := netip.MustParsePrefix("10.238.0.0/24"), netip.MustParsePrefix("fd42:0:0:8::/64")
	o.define(t, name, dnsmasqXML(name, br, "10.238.0", "fd42:0:0:8", mac))
	if l := o.list(t); len(l) != 1 || l[0].DHCP != "dnsmasq" {
		t.Fatalf("net list after define: %+v", l)
	}
	up := labkit.NewUplink(t, "updm", "10.239.0.1/24")
	labkit.Run(t, "ip", "addr", "add", "10.239.0.2/24", "dev", up.Name)

	o.net(t, "start", name)
	t.Cleanup(func() { vnetguard(t, o.env(), "net", "stop", name, "--lock-dir", o.run) })
	if m := labkit.Run(t, "nmcli", "-g", "ipv4.method,ipv6.method", "connection", "show", "vnetguard-"+name); m != "manual\nmanual\n" {
		t.Fatalf("profile methods: %q, want manual (vnetguard's dnsmasq serves DHCP and sends RAs)", m)
	}
	if tables := nftTables(t); strings.Contains(tables, "nm-shared-"+br) {
		t.Fatalf("NetworkManager's shared-mode table for %s exists:\n%s", br, tables)
	}
	pid := dnsmasqPid(o, name)
	if pid == 0 {
		t.Fatalf("no dnsmasq of vnetguard's for %s", name)
	}

	t.Setenv("LAB_GUEST_MAC", mac)
	pinned := labkit.NewGuest(t, "ogpin", br)
	os.Unsetenv("LAB_GUEST_MAC")
	other := labkit.NewGuest(t, "ogdyn", br)
	t0 := time.Now()
	if a := pinned.WaitAddr(t, v4, 30*time.Second); a != netip.MustParseAddr("10.238.0.5") {
		t.Fatalf("pinned guest got %s, want its host entry's 10.238.0.5", a)
	}
	t.Logf("pinned guest leased 10.238.0.5 after %v", time.Since(t0))
	a := other.WaitAddr(t, v4, 30*time.Second)
	if b := a.As4()[3]; !(b >= 100 && b <= 101 || b >= 150 && b <= 160) {
		t.Fatalf("other guest got %s, outside both ranges", a)
	}
	a6 := dhcpv6(t, pinned, v6)
	if lo, hi := netip.MustParseAddr("fd42:0:0:8::100"), netip.MustParseAddr("fd42:0:0:8::1ff"); a6.Less(lo) || hi.Less(a6) {
		t.Fatalf("DHCPv6 gave %s, outside the range", a6)
	}
	t.Logf("DHCPv6 address %s", a6)
	if err := pinned.Ping(t, netip.MustParseAddr("10.239.0.1")); err != nil {
		t.Fatalf("pinned guest cannot reach upstream through NAT: %v", err)
	}
	if out, err := labkit.Try("ip", "netns", "exec", pinned.Name, "getent", "hosts", "files"); err == nil {
		t.Logf("DNS host entry: %s", strings.TrimSpace(out))
	}

	// Supervision: killed, it is back after the next pass (net list).
	syscall.Kill(pid, syscall.SIGKILL)
	labkit.Eventually(t, 5*time.Second, "the killed dnsmasq to go", func() bool { return dnsmasqPid(o, name) == 0 })
	o.list(t)
	if again := dnsmasqPid(o, name); again == 0 || again == pid {
		t.Fatalf("dnsmasq not started again after it was killed (pid %d, was %d)", again, pid)
	}

	// A clash renumbers the network; dnsmasq follows the new subnet.
	clashingUplink(t, "cldm", "10.238.0.9/24")
	if r := vnetguard(t, o.env(), o.d.flags("resolve", "--lock-dir", o.run)...); r.code != 0 {
		t.Fatalf("resolve exited %d: %s", r.code, r.stderr)
	}
	new4 := bridgeV4(br)
	if !new4.IsValid() || new4.Overlaps(v4) {
		t.Fatalf("bridge %s still on %v after the clash", br, new4)
	}
	conf, _ := os.ReadFile(filepath.Join(o.run, "dnsmasq", name+".conf"))
	want := netip.PrefixFrom(new4.Addr(), 24).Masked().Addr().As4()
	want[3] = 5
	if !strings.Contains(string(conf), fmt.Sprintf("dhcp-host=%s,%s", mac, netip.AddrFrom4(want))) {
		t.Fatalf("dnsmasq's configuration after the renumber:\n%s", conf)
	}
	t1 := time.Now()
	if got := pinned.WaitAddr(t, new4.Masked(), 30*time.Second); got != netip.AddrFrom4(want) {
		t.Fatalf("pinned guest re-leased %s, want %s", got, netip.AddrFrom4(want))
	}
	t.Logf("pinned guest re-leased its host address in %s %v after the renumber", new4.Masked(), time.Since(t1))
	if err := pinned.Ping(t, netip.MustParseAddr("10.239.0.1")); err != nil {
		t.Fatalf("pinned guest cannot reach upstream after the renumber: %v", err)
	}

	o.net(t, "stop", name)
	if dnsmasqFor(br) || dnsmasqPid(o, name) != 0 {
		t.Fatalf("a dnsmasq for %s still runs after net stop", name)
	}
	if ents, _ := os.ReadDir(filepath.Join(o.run, "dnsmasq")); len(ents) != 0 {
		t.Fatalf("dnsmasq files left after net stop: %v", ents)
	}
}

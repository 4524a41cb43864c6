//go:build lab

package e2e

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vnetguard/vnetguard/scripts/labkit"
)

// pingUp pings upstream from the guest, for up to about 5 s: a new SLAAC
// address is tentative (duplicate address detection) for a second or so.
func pingUp(t *testing.T, g *labkit.Guest, addr netip.Addr) bool {
	t.Helper()
	for range 25 {
		if g.Ping(t, addr) == nil {
			return true
		}
		time.Sleep(200 * time.Millisecond)
	}
	return false
}

// IPv6 of a nat network: with <nat ipv6='yes'/> it is masqueraded, and an
// upstream router with no route back to the network sees the host's IPv6
// address; without it, IPv6 is routed (libvirt's "nat anomaly"), and an
// upstream with a route back sees the guest's own address.
func TestOwnNetNATIPv6(t *testing.T) {
	labkit.Require(t)
	o := newOwnNet(t)
	up := labkit.NewUplink(t, "upnat6", "10.247.0.1/24")
	labkit.Run(t, "ip", "addr", "add", "10.247.0.2/24", "dev", up.Name)
	labkit.Run(t, "ip", "addr", "add", "fd44::2/64", "dev", up.Name, "nodad")
	up.Exec(t, "ip", "addr", "add", "fd44::1/64", "dev", up.Router, "nodad")
	upstream, host := netip.MustParseAddr("fd44::1"), netip.MustParseAddr("fd44::2")

	// Masqueraded: upstream has no route back to fd42:0:0:7::/64.
	o.define(t, "ownnat6m", `<network>
  <name>ownnat6m</name>
  <forward mode='nat'><nat ipv6='yes'/></forward>
  <bridge name='ownbr10' stp='off' delay='0'/>
  <ip address='10.246.0.1' prefix='24'><dhcp><range start='10.246.0.100' end='10.246.0.200'/></dhcp></ip>
  <ip family='ipv6' address='fd42:0:0:7::1' prefix='64'/>
</network>
`)
	o.net(t, "start", "ownnat6m")
	t.Cleanup(func() { vnetguard(t, o.env(), "net", "stop", "ownnat6m", "--lock-dir", o.run) })
	g := labkit.NewGuest(t, "ognat6m", "ownbr10")
	a := g.WaitAddr(t, netip.MustParsePrefix("fd42:0:0:7::/64"), 30*time.Second)
	fromHost, fromGuest := seenFrom(t, up, host), seenFrom(t, up, a)
	if !pingUp(t, g, upstream) {
		t.Fatalf("guest %s cannot reach upstream %s through IPv6 masquerade", a, upstream)
	}
	if fromHost() == 0 || fromGuest() != 0 {
		t.Fatalf("upstream saw %d request(s) from the host's %s and %d from the guest's own %s: want masquerade",
			fromHost(), host, fromGuest(), a)
	}
	rules := labkit.Run(t, "nft", "list", "table", "inet", "vnetguard")
	if !strings.Contains(rules, "ip6 saddr fd42:0:0:7::/64") || !strings.Contains(rules, "masquerade") {
		t.Fatalf("no IPv6 masquerade in:\n%s", rules)
	}

	// Routed: upstream has a route back and sees the guest's own address.
	up.Exec(t, "ip", "route", "add", "fd42:0:0:8::/64", "via", host.String())
	o.define(t, "ownnat6r", ownXML("ownnat6r", "ownbr11", "nat", "10.248.0", "fd42:0:0:8", ""))
	o.net(t, "start", "ownnat6r")
	t.Cleanup(func() { vnetguard(t, o.env(), "net", "stop", "ownnat6r", "--lock-dir", o.run) })
	g2 := labkit.NewGuest(t, "ognat6r", "ownbr11")
	a2 := g2.WaitAddr(t, netip.MustParsePrefix("fd42:0:0:8::/64"), 30*time.Second)
	seen := seenFrom(t, up, a2)
	if !pingUp(t, g2, upstream) {
		t.Fatalf("guest %s cannot reach upstream %s over routed IPv6", a2, upstream)
	}
	if seen() == 0 {
		t.Fatalf("upstream never saw the guest's own %s: IPv6 of a nat network must be routed", a2)
	}
}

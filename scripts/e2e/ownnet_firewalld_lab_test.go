//go:build lab

package e2e

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vnetguard/vnetguard/scripts/labkit"
)

// firewalldZone is the zone firewalld has an interface in ("" for none:
// the default zone's).
func firewalldZone(iface string) string {
	out, _ := labkit.Try("firewall-cmd", "--get-zone-of-interface="+iface)
	return strings.TrimSpace(out)
}

// A nat network of vnetguard's own (IPv4 with DHCP, IPv6) with firewalld
// running (nftables backend, its default zone public): a guest gets its
// DHCPv4 lease and SLAAC address and reaches an upstream router over both
// families; `firewall-cmd --reload` leaves vnetguard's table as it was,
// and a guest plugged in after the reload leases and reaches upstream too.
func TestOwnNetWithFirewalld(t *testing.T) {
	labkit.Require(t)
	// firewalld flushes the iptables tables when it stops, libvirt's
	// chains among them, and libvirt notices only its start: restarted
	// once firewalld is gone (cleanups run last first), libvirtd makes
	// them again for the tests that follow in this lab.
	t.Cleanup(func() {
		stopLibvirtd(t)
		startLibvirtd(t)
	})
	labkit.StartFirewalld(t)
	o := newOwnNet(t)
	const name, br = "ownfwd", "ownbr16"
	v4, v6 := netip.MustParsePrefix("10.87.0.0/24"), netip.MustParsePrefix("fd42:0:0:87::/64")
	up := labkit.NewUplink(t, "upfwd", "10.86.0.1/24")
	labkit.Run(t, "ip", "addr", "add", "10.86.0.2/24", "dev", up.Name)
	labkit.Run(t, "ip", "addr", "add", "fd46::2/64", "dev", up.Name, "nodad")
	up.Exec(t, "ip", "addr", "add", "fd46::1/64", "dev", up.Router, "nodad")
	// IPv6 of a nat network is routed: upstream routes it back.
	up.Exec(t, "ip", "route", "add", v6.String(), "via", "fd46::2")
	up4, up6 := netip.MustParseAddr("10.86.0.1"), netip.MustParseAddr("fd46::1")

	o.define(t, name, ownXML(name, br, "nat", "10.87.0", "fd42:0:0:87", ""))
	o.net(t, "start", name)
	t.Cleanup(func() { vnetguard(t, o.env(), "net", "stop", name, "--lock-dir", o.run) })
	t.Logf("firewalld zones: bridge %s in %q, uplink %s in %q (default %s)", br, firewalldZone(br),
		up.Name, firewalldZone(up.Name), strings.TrimSpace(labkit.Run(t, "firewall-cmd", "--get-default-zone")))

	reaches := func(g *labkit.Guest, when string) {
		t.Helper()
		t0 := time.Now()
		a4 := g.WaitAddr(t, v4, 30*time.Second)
		a6 := g.WaitAddr(t, v6, 30*time.Second)
		if !pingUp(t, g, up4) {
			t.Fatalf("%s: guest %s cannot reach upstream %s through NAT", when, a4, up4)
		}
		// The router talks to the guest first, as a LAN's router talks
		// to its hosts: in the lab the host's first neighbour
		// solicitations for the router's IPv6 address can go unanswered
		// for a while, with or without firewalld.
		labkit.Try("ip", "netns", "exec", up.Router, "ping", "-c", "1", "-W", "2", a6.String())
		if !pingUp(t, g, up6) {
			t.Fatalf("%s: guest %s cannot reach upstream %s", when, a6, up6)
		}
		t.Logf("%s: guest %s leased %s and %s and reached upstream in %v", when, g.Name, a4, a6, time.Since(t0).Round(time.Millisecond))
	}
	g := labkit.NewGuest(t, "ogfwd", br)
	reaches(g, "with firewalld")

	before := labkit.Run(t, "nft", "list", "table", "inet", "vnetguard")
	labkit.Run(t, "firewall-cmd", "--reload")
	after, err := labkit.Try("nft", "list", "table", "inet", "vnetguard")
	if err != nil || after != before {
		t.Fatalf("firewall-cmd --reload changed vnetguard's table (%v); before:\n%s\nafter:\n%s", err, before, after)
	}
	if !pingUp(t, g, up4) || !pingUp(t, g, up6) {
		t.Fatalf("after firewall-cmd --reload the guest cannot reach upstream")
	}
	reaches(labkit.NewGuest(t, "ogfwd2", br), "after firewall-cmd --reload")

	// A routed network gets its DHCP from vnetguard's dnsmasq, not shared
	// mode, yet its bridge is in the nm-shared zone too (the profile says
	// so): DHCP from its guests reaches the host and their traffic is
	// forwarded, where firewalld's default zone would refuse both.
	const rname, rbr = "ownfwr", "ownbr17"
	r4 := netip.MustParsePrefix("10.88.0.0/24")
	o.define(t, rname, ownXML(rname, rbr, "route", "10.88.0", "", ""))
	o.net(t, "start", rname)
	t.Cleanup(func() { vnetguard(t, o.env(), "net", "stop", rname, "--lock-dir", o.run) })
	if z := firewalldZone(rbr); z != "nm-shared" {
		t.Fatalf("routed bridge %s in firewalld zone %q, want nm-shared", rbr, z)
	}
	up.Exec(t, "ip", "route", "add", r4.String(), "via", "10.86.0.2")
	rg := labkit.NewGuest(t, "ogfwr", rbr)
	ra := rg.WaitAddr(t, r4, 30*time.Second)
	if !pingUp(t, rg, up4) {
		t.Fatalf("routed guest %s cannot reach upstream %s with firewalld", ra, up4)
	}
}

//go:build lab

package e2e

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vnetguard/vnetguard/scripts/labkit"
)

// A routed network that shares its uplink's on-link /64 by proxy NDP (a
// provider that gives one /64 and routes nothing): the uplink's /64 is no
// clash for it; a guest gets a DHCPv6 address in the /64, the upstream
// router reaches it there (the host answers neighbour solicitations for it
// on the uplink and routes it to the bridge) and it reaches the router;
// net stop removes every proxy entry.
func TestOwnNetProxyNDP(t *testing.T) {
	labkit.Require(t)
	o := newOwnNet(t)
	const name, br = "ownpx", "ownbrpx"
	up := labkit.NewUplink(t, "uppx", "fd46:1::1/64")
	up.NMStatic(t, "fd46:1::10/64")
	// As on a host where forwarding was on before NetworkManager set the
	// uplink up (it sets the device's forwarding to 0): the kernel
	// proxies only on a forwarding interface.
	labkit.Run(t, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
	labkit.Run(t, "sysctl", "-qw", "net.ipv6.conf.uppx.forwarding=0")
	shared := netip.MustParsePrefix("fd46:1::/64")
	o.define(t, name, `<network>
  <name>ownpx</name>
  <metadata>
    <vnetguard:policy xmlns:vnetguard="urn:x-vnetguard:policy:1" on-conflict="renumber"/>
    <vnetguard:proxy-ndp xmlns:vnetguard="urn:x-vnetguard:policy:1"/>
  </metadata>
  <forward mode='route' dev='uppx'/>
  <bridge name='ownbrpx' stp='off' delay='0'/>
  <ip family='ipv6' address='fd46:1::2' prefix='64'>
    <dhcp><range start='fd46:1::100' end='fd46:1::10f'/></dhcp>
  </ip>
</network>
`)
	o.net(t, "start", name)
	t.Cleanup(func() { vnetguard(t, o.env(), "net", "stop", name, "--lock-dir", o.run) })

	// The uplink's own address and route in the /64 are no clash.
	if r := vnetguard(t, o.env(), o.d.flags("resolve", "--lock-dir", o.run)...); r.code != 0 || strings.Contains(r.stdout, "renumber") {
		t.Fatalf("resolve over the shared /64 exited %d: %s%s", r.code, r.stdout, r.stderr)
	}
	if addrs := labkit.Run(t, "ip", "-6", "addr", "show", "dev", br); !strings.Contains(addrs, "fd46:1::2/64") {
		t.Fatalf("bridge moved off the shared /64:\n%s", addrs)
	}
	proxies := func() string {
		out, _ := labkit.Try("ip", "-6", "neigh", "show", "proxy", "dev", up.Name)
		return out
	}
	if n := strings.Count(proxies(), "fd46:1::1"); n != 16 {
		t.Fatalf("%d proxy entries on %s, want the range's 16:\n%s", n, up.Name, proxies())
	}

	g := labkit.NewGuest(t, "ogpx", br)
	a6 := dhcpv6(t, g, shared)
	t.Logf("guest's DHCPv6 address %s", a6)
	if !strings.Contains(proxies(), a6.String()+" ") {
		t.Fatalf("no proxy entry for %s on %s:\n%s", a6, up.Name, proxies())
	}
	reached := false
	for deadline := time.Now().Add(10 * time.Second); !reached && time.Now().Before(deadline); {
		_, err := labkit.Try("ip", "netns", "exec", up.Router, "ping", "-c", "1", "-W", "1", a6.String())
		reached = err == nil
	}
	if !reached {
		var dump strings.Builder
		for _, argv := range [][]string{{"nft", "list", "ruleset"}, {"ip6tables-save"}, {"ip", "-6", "route"}, {"ip", "-6", "neigh"},
			{"sysctl", "net.ipv6.conf.all.forwarding", "net.ipv6.conf." + up.Name + ".proxy_ndp", "net.ipv6.conf." + up.Name + ".forwarding", "net.ipv6.conf.default.forwarding", "net.ipv6.conf.all.proxy_ndp"}, {"ip", "-6", "neigh", "show", "proxy"}, {"ip", "-6", "maddr", "show", "dev", up.Name},
			{"ip", "netns", "exec", up.Router, "ip", "-6", "neigh"}} {
			out, err := labkit.Try(argv...)
			fmt.Fprintf(&dump, "$ %s (%v)\n%s\n", strings.Join(argv, " "), err, out)
		}
		t.Fatalf("the upstream router cannot reach the guest at %s:\n%s", a6, dump.String())
	}
	if err := g.Ping(t, netip.MustParseAddr("fd46:1::1")); err != nil {
		gr, _ := labkit.Try("ip", "-n", g.Name, "-6", "route")
		t.Fatalf("guest cannot reach the upstream router: %v\nguest routes:\n%s", err, gr)
	}

	o.net(t, "stop", name)
	if p := proxies(); strings.Contains(p, "fd46:1::") {
		t.Fatalf("proxy entries left after net stop:\n%s", p)
	}
}

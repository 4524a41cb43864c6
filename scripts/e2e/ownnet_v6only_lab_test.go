//go:build lab

package e2e

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vnetguard/vnetguard/scripts/labkit"
)

// An IPv6-only network starts with no port plugged in: NetworkManager
// keeps a portless bridge "activating" until its IPv6 address leaves the
// tentative state, which the kernel lets happen only once a port gives it
// a carrier. net start returns once the address is on the bridge; the
// first guest completes the activation and gets a SLAAC address.
func TestOwnNetIPv6Only(t *testing.T) {
	labkit.Require(t)
	o := newOwnNet(t)
	const name, br = "own6only", "ownbr9"
	v6 := netip.MustParsePrefix("fd42:0:0:9::/64")
	o.define(t, name, ownXML(name, br, "nat", "", "fd42:0:0:9", ""))
	t0 := time.Now()
	o.net(t, "start", name)
	t.Logf("net start took %v", time.Since(t0))
	t.Cleanup(func() { vnetguard(t, o.env(), "net", "stop", name, "--lock-dir", o.run) })
	if l := o.list(t); len(l) != 1 || !l[0].Active {
		t.Fatalf("net list after start: %+v", l)
	}
	if addrs := labkit.Run(t, "ip", "-6", "addr", "show", "dev", br); !strings.Contains(addrs, "fd42:0:0:9::1/64") {
		t.Fatalf("bridge addresses after start:\n%s", addrs)
	}
	g := labkit.NewGuest(t, "og6only", br)
	a := g.WaitAddr(t, v6, 30*time.Second)
	t.Logf("guest SLAAC address %s %v after plugging in", a, time.Since(t0))
	labkit.Eventually(t, 10*time.Second, "NetworkManager to finish activating "+br, func() bool {
		out, _ := labkit.Try("nmcli", "-g", "GENERAL.STATE", "device", "show", br)
		return strings.HasPrefix(out, "100")
	})
	if err := g.Ping(t, netip.MustParseAddr("fd42:0:0:9::1")); err != nil {
		t.Fatalf("guest cannot reach its bridge: %v", err)
	}
}

//go:build lab

package e2e

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vnetguard/vnetguard/scripts/labkit"
)

// The daemon announces what it did: a real clash moves a network, and the
// notification agent (private system and session buses, a stub
// notification server) shows it in plain words.
func TestDaemonActionReachesNotifyAgent(t *testing.T) {
	labkit.Require(t)
	sysAddr, stub, _, _ := startNotifyAgent(t)

	d := newDirs(t)
	spec := netSpec{name: "nt", bridge: "vbr-nt", v4: "192.168.173", policy: "renumber"}
	defineNetwork(t, spec)
	t.Setenv("DBUS_SYSTEM_BUS_ADDRESS", sysAddr) // the daemon announces there
	startDaemon(t, d, writeConfig(t, daemonConfig))
	clashingUplink(t, "up-nt", "192.168.173.9/24")
	moved := movedAway(t, d, "nt", netip.MustParsePrefix("192.168.173.0/24"), 10*time.Second)
	select {
	case n := <-stub.calls:
		want := "Virtual network 'nt' moved from 192.168.173.0/24 to " + moved.Masked().String()
		if n.summary != "Virtual network moved" || !strings.HasPrefix(n.body, want) || !strings.Contains(n.body, "up-nt") {
			t.Fatalf("Notify(%q, %q), want a body starting %q naming up-nt", n.summary, n.body, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the daemon's action reached no notification")
	}
}

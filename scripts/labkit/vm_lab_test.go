//go:build lab

package labkit

import (
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// A real qemu guest on libvirt's default network leases an address from its
// dnsmasq, answers pings, holds one network port, and, when libvirt takes
// its NIC's link down and up, sees the carrier go and come back and leases
// again.
func TestVMGuestLeasesAndRelease(t *testing.T) {
	Require(t)
	DefaultNetwork(t)
	lan := netip.MustParsePrefix("192.168.122.0/24")

	start := time.Now()
	vm := StartGuestVM(t, "vg-vmtest", "default")
	addr := vm.WaitLease(t, lan, 60*time.Second)
	t.Logf("%s (%s) leased %s %v after start", vm.Domain(), vm.MAC(), addr, time.Since(start).Round(time.Millisecond))
	if err := vm.Ping(addr, 10*time.Second); err != nil {
		t.Fatal(err)
	}

	ports := nonEmptyLines(Run(t, "virsh", "-q", "net-port-list", "default"))
	if len(ports) != 1 {
		t.Errorf("net-port-list default lists %d ports, want 1: %q", len(ports), ports)
	}
	tap := vm.Tap(t)
	if !strings.HasPrefix(tap, "vnet") {
		t.Errorf("tap %q, want vnetN", tap)
	}

	events, leases := len(vm.Events()), len(vm.Leases())
	vm.SetLink(t, false)
	time.Sleep(time.Second)
	// The host side of the NIC stays up: only the guest sees the change.
	brport, _ := os.ReadFile("/sys/class/net/" + tap + "/brport/state")
	t.Logf("while the guest's link is down, %s's bridge port state is %s (3: forwarding)", tap, strings.TrimSpace(string(brport)))
	up := time.Now()
	vm.SetLink(t, true)
	again := vm.WaitLeaseAfter(t, leases, lan, 30*time.Second)
	t.Logf("re-leased %s %v after link up", again, time.Since(up).Round(time.Millisecond))

	got := vm.Events()[events:]
	down := slices.Index(got, "carrier down")
	if down < 0 || !slices.Contains(got[down:], "carrier up") {
		t.Errorf("guest did not report carrier down, then up: %q", got)
	}
	if err := vm.Ping(again, 10*time.Second); err != nil {
		t.Fatal(err)
	}
}

func nonEmptyLines(s string) []string {
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

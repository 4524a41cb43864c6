//go:build lab

package e2e

import (
	"net/netip"
	"testing"
	"time"

	"github.com/vnetguard/vnetguard/scripts/labkit"
)

// BenchmarkVMReLease: clash -> a real qemu guest re-leased in the new
// subnet, over 5 renumbers by `resolve` and 5 by the daemon, next to the
// same guest's re-lease after a plain link bounce (virsh domif-setlink
// down, up) measured in the same run:
//
//	scripts/lab run -- go test -tags lab -run '^$' -bench VMReLease -benchtime 1x ./scripts/e2e/
//
// A renumber restarts the bridge: its new port passes STP listening and
// learning (4 s at the kernel's minimum with stp='on') before the guest's
// DHCP gets through, and dnsmasq checks a new address with a ping. The
// plain bounce keeps the bridge port forwarding.
func BenchmarkVMReLease(b *testing.B) {
	labkit.Require(b)
	const runs = 5
	d := dirs{cache: b.TempDir(), state: b.TempDir()}
	spec := netSpec{name: "vmb", bridge: "vbr-vmb", v4: "192.168.170", policy: "renumber"}
	defineNetwork(b, spec)
	vm := labkit.StartGuestVM(b, "vm-vmb", spec.name)
	home := netip.MustParsePrefix("192.168.170.0/24")
	vm.WaitLease(b, home, 120*time.Second)
	labkit.NewUplink(b, "up-vmb", "")

	// The reference: a plain bounce of the guest's link.
	var bounce []time.Duration
	for range runs {
		n := len(vm.Leases())
		start := time.Now()
		vm.SetLink(b, false)
		time.Sleep(500 * time.Millisecond) // as long as vnetguard keeps it down
		vm.SetLink(b, true)
		vm.WaitLeaseAfter(b, n, home, 60*time.Second)
		bounce = append(bounce, time.Since(start))
	}

	clashOnce := func(b *testing.B, act func()) time.Duration {
		n := len(vm.Leases())
		labkit.Run(b, "ip", "addr", "add", "192.168.170.50/24", "dev", "up-vmb")
		start := time.Now()
		act()
		var moved netip.Prefix
		eventually(b, 30*time.Second, "the network to move", func() bool {
			// Quiet: between the stop and the start it has no live subnet.
			moved = liveSubnetQuiet(d, spec.name, true)
			return moved.IsValid() && !moved.Overlaps(home)
		})
		vm.WaitLeaseAfter(b, n, moved, 60*time.Second)
		took := time.Since(start)
		// Back home: clash gone, the user moves it back.
		labkit.Run(b, "ip", "addr", "del", "192.168.170.50/24", "dev", "up-vmb")
		n = len(vm.Leases())
		if r := vnetguard(b, nil, d.flags("renumber", spec.name, "--ipv4", home.String())...); r.code != 0 {
			b.Fatalf("moving back: exit %d", r.code)
		}
		vm.WaitLeaseAfter(b, n, home, 60*time.Second)
		return took
	}
	var byResolve, byDaemon []time.Duration
	for range runs {
		byResolve = append(byResolve, clashOnce(b, func() {
			if r := vnetguard(b, nil, d.flags("resolve")...); r.code != 0 {
				b.Fatalf("resolve: exit %d", r.code)
			}
		}))
	}
	cfg := writeConfig(b, "[watch]\ndamping-window=0\n")
	dm := startDaemon(b, d, cfg)
	for range runs {
		byDaemon = append(byDaemon, clashOnce(b, func() {}))
	}
	dm.stop(b)
	b.Logf("guest re-lease, median of %d: plain link bounce %v; clash -> re-leased by resolve %v (%.0fx), by the daemon %v (%.0fx)",
		runs, median(bounce).Round(time.Millisecond),
		median(byResolve).Round(time.Millisecond), float64(median(byResolve))/float64(median(bounce)),
		median(byDaemon).Round(time.Millisecond), float64(median(byDaemon))/float64(median(bounce)))
	b.ReportMetric(median(bounce).Seconds(), "s-bounce-median")
	b.ReportMetric(median(byResolve).Seconds(), "s-resolve-median")
	b.ReportMetric(median(byDaemon).Seconds(), "s-daemon-median")
}

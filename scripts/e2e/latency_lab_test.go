//go:build lab

package e2e

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/vnetguard/vnetguard/scripts/labkit"
)

// BenchmarkConflictToLease measures, over 10 runs, the time from a clash
// being present to vnetguard having moved the network (resolve returned)
// and to the guest holding a lease in the new subnet. Run it in the lab:
//
//	scripts/lab run -- go test -tags lab -run '^$' -bench ConflictToLease -benchtime 1x ./scripts/e2e/
//
// The lease time includes the Linux bridge's STP listening and learning
// (2 s each at the kernel's minimum forward delay) and the DHCP client's
// retransmissions; both belong to libvirt's bridge and the guest, and are
// paid by any renumbering, but they are what a user waits for.
func BenchmarkConflictToLease(b *testing.B) {
	labkit.Require(b)
	const runs = 10
	d := dirs{cache: b.TempDir(), state: b.TempDir()}
	spec := netSpec{name: "lat", bridge: "vbr-lat", v4: "192.168.160", policy: "renumber"}
	defineNetwork(b, spec)
	g := labkit.NewGuest(b, "g-lat", spec.bridge)
	home := netip.MustParsePrefix("192.168.160.0/24")
	g.WaitAddr(b, home, 60*time.Second)
	labkit.NewUplink(b, "up-lat", "")

	var resolveTimes, leaseTimes []time.Duration
	for i := 0; i < runs; i++ {
		labkit.Run(b, "ip", "addr", "add", "192.168.160.50/24", "dev", "up-lat")
		start := time.Now()
		if r := vnetguard(b, nil, d.flags("resolve")...); r.code != 0 {
			b.Fatalf("resolve: %+v", r)
		}
		resolved := time.Since(start)
		moved := liveSubnet(b, d, spec.name, true)
		if _, ok := g.PollAddr(moved, 60*time.Second); !ok {
			b.Fatalf("run %d: no lease in %s", i, moved)
		}
		leased := time.Since(start)
		resolveTimes = append(resolveTimes, resolved)
		leaseTimes = append(leaseTimes, leased)
		b.Logf("run %d: resolve %v, lease in %s after %v", i+1, resolved.Round(time.Millisecond), moved, leased.Round(time.Millisecond))
		// Back home for the next run: clash gone, network restarted from
		// its definition, guest re-plugged by hand as libvirt does not.
		labkit.Run(b, "ip", "addr", "del", "192.168.160.50/24", "dev", "up-lat")
		virsh(b, "net-destroy", spec.name)
		virsh(b, "net-start", spec.name)
		labkit.Run(b, "ip", "link", "set", "vg-g-lat", "down")
		labkit.Run(b, "ip", "link", "set", "vg-g-lat", "master", spec.bridge)
		labkit.Run(b, "ip", "link", "set", "vg-g-lat", "up")
		g.WaitAddr(b, home, 60*time.Second)
	}
	b.ReportMetric(median(resolveTimes).Seconds(), "s-resolve-median")
	b.ReportMetric(median(leaseTimes).Seconds(), "s-to-lease-median")
	b.ReportMetric(slices.Max(leaseTimes).Seconds(), "s-to-lease-max")
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

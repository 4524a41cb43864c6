package conflict

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
)

// naiveCheck is the obvious linear scan: every network subnet against
// every host entry. It is the reference the indexed Check is measured
// against, and the oracle it must agree with.
func naiveCheck(h HostView, nets []Network) int {
	count := 0
	for _, n := range nets {
		own := func(i string) bool { return i != "" && (i == n.Bridge || slices.Contains(n.Ports, i)) }
		for _, s := range n.Subnets {
			var seen map[string]bool // only allocated on a hit: keep the scan tight
			hit := func(k string) {
				if seen == nil {
					seen = map[string]bool{}
				}
				if !seen[k] {
					seen[k] = true
					count++
				}
			}
			for _, a := range h.Addresses {
				if a.Prefix.Masked().Overlaps(s) && !ignorable(a.Prefix.Masked()) && a.Scope != "host" && !own(a.Interface) {
					hit(a.Prefix.String() + " " + a.Interface)
				}
			}
			for _, r := range h.Routes {
				if r.Dst.Overlaps(s) && !ignorable(r.Dst) && routeTypeCounts(r.Type) && !own(r.Interface) {
					hit(r.Dst.String() + " " + r.Interface + " " + fmt.Sprint(r.Table))
				}
			}
		}
	}
	return count
}

func randomNetworks(rng *rand.Rand, n int) []Network {
	nets := make([]Network, n)
	for i := range nets {
		s := netip.PrefixFrom(netip.AddrFrom4([4]byte{[]byte{10, 172, 192}[rng.IntN(3)], byte(rng.IntN(256)), byte(rng.IntN(256)), 0}), 24)
		if s.Addr().As4()[0] == 192 {
			s = netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 168, s.Addr().As4()[2], 0}), 24)
		}
		nets[i] = Network{Name: fmt.Sprintf("net%d", i), Bridge: fmt.Sprintf("br%d", i), Subnets: []netip.Prefix{s, testULA.Subnet(uint16(i))}}
	}
	return nets
}

func TestIndexedAgreesWithNaive(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for round := 0; round < 50; round++ {
		h := randomView(rng, 1+rng.IntN(2000))
		nets := randomNetworks(rng, 1+rng.IntN(50))
		got := len(CheckAll(NewIndex(h), nets))
		if want := naiveCheck(h, nets); got != want {
			t.Fatalf("round %d: indexed found %d conflicts, naive %d", round, got, want)
		}
	}
}

var sizes = []int{1_000, 10_000, 100_000}

// tableView is a realistic large host: a router or VPN concentrator with a
// full table of public prefixes (/8 to /24, IPv4 and IPv6) in several
// tables, plus a handful of private LAN and VPN entries. Its conflicts
// with the virtual networks are few, as on real hosts.
func tableView(rng *rand.Rand, n int) HostView {
	var h HostView
	for i := 0; i < n; i++ {
		table := []int{254, 254, 254, 51820, 100}[rng.IntN(5)]
		if rng.IntN(5) == 0 {
			var a [16]byte
			a[0], a[1] = 0x20|byte(rng.IntN(16)), byte(rng.IntN(256))
			for j := 2; j < 6; j++ {
				a[j] = byte(rng.IntN(256))
			}
			h.Routes = append(h.Routes, HostRoute{Dst: netip.PrefixFrom(netip.AddrFrom16(a), 32+rng.IntN(17)).Masked(), Interface: "wan0", Table: table, Gateway: netip.MustParseAddr("2001:db8::1")})
			continue
		}
		first := byte(1 + rng.IntN(222))
		if first == 10 || first == 127 || first == 172 || first == 192 {
			first++
		}
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{first, byte(rng.IntN(256)), byte(rng.IntN(256)), 0}), 8+rng.IntN(17)).Masked()
		h.Routes = append(h.Routes, HostRoute{Dst: p, Interface: "wan0", Table: table, Gateway: netip.MustParseAddr("203.0.113.1")})
	}
	h.Addresses = append(h.Addresses,
		HostAddress{Prefix: pfx("192.168.122.57/24"), Interface: "wlan0"},
		HostAddress{Prefix: pfx("10.8.0.2/24"), Interface: "tun0"})
	h.Routes = append(h.Routes,
		HostRoute{Dst: pfx("10.0.0.0/12"), Interface: "tun0", Table: 254},
		HostRoute{Dst: pfx("192.168.128.0/20"), Interface: "wg0", Table: 51820})
	return h
}

func BenchmarkNewIndex(b *testing.B) {
	for _, n := range sizes {
		h := tableView(rand.New(rand.NewPCG(1, uint64(n))), n)
		b.Run(fmt.Sprintf("routes=%d", n), func(b *testing.B) {
			for b.Loop() {
				NewIndex(h)
			}
		})
	}
}

// BenchmarkCheckAll: 1,000 dual-stack networks against the host.
func BenchmarkCheckAll(b *testing.B) {
	for _, n := range sizes {
		rng := rand.New(rand.NewPCG(1, uint64(n)))
		h := tableView(rng, n)
		nets := randomNetworks(rng, 1000)
		ix := NewIndex(h)
		b.Run(fmt.Sprintf("routes=%d/networks=1000", n), func(b *testing.B) {
			for b.Loop() {
				CheckAll(ix, nets)
			}
		})
	}
}

// BenchmarkCheckAllNaive is the linear-scan reference, same data. It
// takes seconds per operation at 100k routes: run with -benchtime=1x.
func BenchmarkCheckAllNaive(b *testing.B) {
	for _, n := range sizes {
		rng := rand.New(rand.NewPCG(1, uint64(n)))
		h := tableView(rng, n)
		nets := randomNetworks(rng, 1000)
		b.Run(fmt.Sprintf("routes=%d/networks=1000", n), func(b *testing.B) {
			for b.Loop() {
				naiveCheck(h, nets)
			}
		})
	}
}

// BenchmarkAllocate: one subnet among the host's routes and 1,000 other
// networks, on a host whose 192.168 range is crowded.
func BenchmarkAllocate(b *testing.B) {
	for _, n := range sizes {
		rng := rand.New(rand.NewPCG(1, uint64(n)))
		h := tableView(rng, n)
		ix := NewIndex(h)
		var others []netip.Prefix
		for _, net := range randomNetworks(rng, 1000) {
			others = append(others, net.Subnets...)
		}
		b.Run(fmt.Sprintf("routes=%d/networks=1000", n), func(b *testing.B) {
			for b.Loop() {
				occ := NewOccupied(ix, others, nil)
				if _, err := occ.Allocate(Request{Family: IPv4, Direction: Down}); err != nil {
					b.Fatal(err)
				}
				if _, err := occ.Allocate(Request{Family: IPv6, Network: "x", ULA: testULA}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

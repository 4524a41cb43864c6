package conflict

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// naiveKey identifies one conflict for comparing implementations.
type naiveKey struct {
	network      string
	subnet, host netip.Prefix
	kind, iface  string
	table        int
}

func compareKeys(a, b naiveKey) int {
	return cmp.Or(strings.Compare(a.network, b.network), comparePrefix(a.subnet, b.subnet), strings.Compare(a.kind, b.kind),
		comparePrefix(a.host, b.host), strings.Compare(a.iface, b.iface), cmp.Compare(a.table, b.table))
}

// naiveCheck is the obvious linear scan and the oracle the indexed Check
// must agree with: every subnet of every network against every host
// address and route, the skip rules written out again from the spec.
func naiveCheck(h HostView, nets []Network) []naiveKey {
	var out []naiveKey
	mirrors := func(dst netip.Prefix) bool { // an address's subnet holds dst
		for _, a := range h.Addresses {
			if a.Prefix.IsValid() && a.Prefix.Bits() <= dst.Bits() && a.Prefix.Masked().Contains(dst.Addr()) {
				return true
			}
		}
		return false
	}
	for _, n := range nets {
		own := func(i string) bool { return i != "" && (i == n.Bridge || slices.Contains(n.Ports, i)) }
		seen := map[naiveKey]bool{}
		hit := func(k naiveKey) {
			if !seen[k] {
				seen[k] = true
				out = append(out, k)
			}
		}
		for _, s := range n.Subnets {
			if !s.IsValid() {
				continue
			}
			s = s.Masked()
			for _, a := range h.Addresses {
				m := a.Prefix.Masked()
				if m.Overlaps(s) && !ignorable(m) && !own(a.Interface) {
					hit(naiveKey{n.Name, s, a.Prefix, KindAddress, a.Interface, 0})
				}
			}
			for _, r := range h.Routes {
				if !r.Dst.Overlaps(s) {
					continue
				}
				dst := r.Dst.Masked()
				switch r.Type {
				case "multicast", "throw", "nat":
					continue
				case "local", "broadcast", "anycast":
					if mirrors(dst) {
						continue
					}
				}
				if !ignorable(dst) && !own(r.Interface) {
					hit(naiveKey{n.Name, s, dst, KindRoute, r.Interface, r.Table})
				}
			}
		}
	}
	slices.SortFunc(out, compareKeys)
	return out
}

func keysOf(cs []Conflict) []naiveKey {
	out := make([]naiveKey, len(cs))
	for i, c := range cs {
		out[i] = naiveKey{c.Network, c.Subnet, c.Host, c.Kind, c.Interface, c.Table}
	}
	slices.SortFunc(out, compareKeys)
	return out
}

func randomNetworks(rng *rand.Rand, n int) []Network {
	nets := make([]Network, n)
	for i := range nets {
		var s netip.Prefix
		switch rng.IntN(3) {
		case 0:
			s = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(rng.IntN(256)), byte(rng.IntN(256)), 0}), 24)
		case 1:
			s = netip.PrefixFrom(netip.AddrFrom4([4]byte{172, 16 + byte(rng.IntN(16)), byte(rng.IntN(256)), 0}), 24)
		default:
			s = netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 168, byte(rng.IntN(256)), 0}), 20+rng.IntN(9)).Masked()
		}
		nets[i] = Network{Name: fmt.Sprintf("net%d", i), Bridge: fmt.Sprintf("br%d", i), Ports: []string{fmt.Sprintf("vnet%d", 2*i), fmt.Sprintf("vnet%d", 2*i+1)},
			Subnets: []netip.Prefix{s, testULA.Subnet(uint16(i))}}
	}
	return nets
}

// mixedView is a small, dense host for the agreement test: everything in
// the ranges the networks use, every route type and skip rule, on the
// networks' own bridges too.
func mixedView(rng *rand.Rand, n int) HostView {
	h := randomView(rng, n)
	types := []string{"", "unicast", "local", "broadcast", "anycast", "multicast", "blackhole", "unreachable", "prohibit", "throw"}
	ifaces := []string{"", "eth0", "wg0", "br1", "br2", "vnet3", "lo"}
	for i := 0; i < n/4 && len(h.Routes) > 0; i++ {
		r := h.Routes[rng.IntN(len(h.Routes))]
		r.Type = types[rng.IntN(len(types))]
		r.Interface = ifaces[rng.IntN(len(ifaces))]
		if rng.IntN(2) == 0 && r.Dst.Addr().Is4() {
			r.Dst = netip.PrefixFrom(r.Dst.Addr(), 32) // a local/broadcast-style host route
		}
		h.Routes = append(h.Routes, r)
	}
	for i := 0; i < n/8; i++ {
		h.Addresses = append(h.Addresses, HostAddress{Prefix: testULA.Subnet(uint16(rng.IntN(8))), Interface: ifaces[rng.IntN(len(ifaces))]})
	}
	for _, s := range []string{"0.0.0.0/0", "0.0.0.0/1", "128.0.0.0/1", "::/0", "::/1", "8000::/1", "169.254.0.0/16", "fe80::/64", "224.0.0.0/4", "127.0.0.0/8"} {
		h.Routes = append(h.Routes, HostRoute{Dst: pfx(s), Interface: "eth0", Table: 254})
	}
	return h
}

func TestIndexedAgreesWithNaive(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	total := 0
	for round := 0; round < 60; round++ {
		h := mixedView(rng, 4+rng.IntN(1500))
		nets := randomNetworks(rng, 1+rng.IntN(40))
		got := keysOf(CheckAll(NewIndex(h), nets))
		want := naiveCheck(h, nets)
		if !slices.Equal(got, want) {
			for i := 0; i < len(got) || i < len(want); i++ {
				var g, w naiveKey
				if i < len(got) {
					g = got[i]
				}
				if i < len(want) {
					w = want[i]
				}
				if g != w {
					t.Fatalf("round %d: first difference at %d: indexed %+v, naive %+v (%d vs %d conflicts)", round, i, g, w, len(got), len(want))
				}
			}
		}
		total += len(got)
	}
	if total < 1000 {
		t.Fatalf("the random data makes too few conflicts (%d) to test anything", total)
	}
}

var sizes = []int{1_000, 10_000, 100_000}

// tableView is a realistic large host: a router or VPN concentrator with a
// full table of public prefixes (/8 to /24, IPv4 and IPv6 /32 to /48) in
// several tables, 2% private-range routes (LANs, VPN pushes, kill-switch
// blackholes) some of which the networks hit, one address per 100 routes
// with its local-table mirrors, and the default route and full-tunnel
// halves.
func tableView(rng *rand.Rand, n int) HostView {
	var h HostView
	tables := []int{254, 254, 254, 51820, 100, 200}
	for i := 0; i < n; i++ {
		table := tables[rng.IntN(len(tables))]
		switch {
		case rng.IntN(50) == 0: // private
			var p netip.Prefix
			if rng.IntN(4) == 0 {
				a := testULA.Subnet(uint16(rng.IntN(1 << 16))).Addr().As16()
				p = netip.PrefixFrom(netip.AddrFrom16(a), 56+rng.IntN(9)).Masked()
			} else {
				p = netip.PrefixFrom(netip.AddrFrom4([4]byte{[]byte{10, 172, 192}[rng.IntN(3)], byte(rng.IntN(256)), byte(rng.IntN(256)), 0}), 16+rng.IntN(13)).Masked()
			}
			r := HostRoute{Dst: p, Interface: fmt.Sprintf("tun%d", rng.IntN(4)), Table: table}
			switch rng.IntN(4) {
			case 0:
				r.Type, r.Interface = "blackhole", ""
			case 1:
				r.Gateway = netip.MustParseAddr("10.99.0.1")
				if p.Addr().Is6() {
					r.Gateway = netip.MustParseAddr("fd00::1")
				}
			}
			h.Routes = append(h.Routes, r)
		case rng.IntN(5) == 0: // public IPv6
			var a [16]byte
			a[0], a[1] = 0x20|byte(rng.IntN(16)), byte(rng.IntN(256))
			for j := 2; j < 6; j++ {
				a[j] = byte(rng.IntN(256))
			}
			h.Routes = append(h.Routes, HostRoute{Dst: netip.PrefixFrom(netip.AddrFrom16(a), 32+rng.IntN(17)).Masked(), Interface: "wan0", Table: table, Gateway: netip.MustParseAddr("2001:db8::1"), Protocol: "bgp"})
		default: // public IPv4
			first := byte(1 + rng.IntN(222))
			if first == 10 || first == 127 || first == 172 || first == 192 {
				first++
			}
			p := netip.PrefixFrom(netip.AddrFrom4([4]byte{first, byte(rng.IntN(256)), byte(rng.IntN(256)), 0}), 8+rng.IntN(17)).Masked()
			h.Routes = append(h.Routes, HostRoute{Dst: p, Interface: "wan0", Table: table, Gateway: netip.MustParseAddr("203.0.113.1"), Protocol: "bgp"})
		}
	}
	for i := 0; i < n/100; i++ {
		a := netip.AddrFrom4([4]byte{[]byte{10, 172, 192}[rng.IntN(3)], byte(rng.IntN(256)), byte(rng.IntN(256)), byte(1 + rng.IntN(250))})
		p := netip.PrefixFrom(a, 24)
		ifc := fmt.Sprintf("eth%d", i)
		h.Addresses = append(h.Addresses, HostAddress{Prefix: p, Interface: ifc, Scope: "global"})
		h.Routes = append(h.Routes,
			HostRoute{Dst: p.Masked(), Interface: ifc, Table: 254, Scope: "link", Protocol: "kernel"},
			HostRoute{Dst: netip.PrefixFrom(a, 32), Interface: ifc, Table: 255, Type: "local", Protocol: "kernel"},
			HostRoute{Dst: netip.PrefixFrom(setBits(a, 24, 32), 32), Interface: ifc, Table: 255, Type: "broadcast", Protocol: "kernel"})
	}
	h.Addresses = append(h.Addresses,
		HostAddress{Prefix: pfx("192.168.122.57/24"), Interface: "wlan0"},
		HostAddress{Prefix: pfx("10.8.0.2/24"), Interface: "tun0"})
	h.Routes = append(h.Routes,
		HostRoute{Dst: pfx("0.0.0.0/0"), Interface: "wan0", Table: 254, Gateway: netip.MustParseAddr("203.0.113.1")},
		HostRoute{Dst: pfx("0.0.0.0/1"), Interface: "tun0", Table: 254},
		HostRoute{Dst: pfx("128.0.0.0/1"), Interface: "tun0", Table: 254},
		HostRoute{Dst: pfx("10.0.0.0/12"), Interface: "tun0", Table: 254},
		HostRoute{Dst: pfx("192.168.128.0/20"), Interface: "wg0", Table: 51820})
	rng.Shuffle(len(h.Routes), func(i, j int) { h.Routes[i], h.Routes[j] = h.Routes[j], h.Routes[i] })
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

// benchData is the same host and networks for the indexed and the naive
// benchmarks, so their figures compare.
func benchData(n int) (HostView, []Network) {
	rng := rand.New(rand.NewPCG(1, uint64(n)))
	return tableView(rng, n), randomNetworks(rng, 1000)
}

// BenchmarkCheckAll: 1,000 dual-stack networks against the host.
func BenchmarkCheckAll(b *testing.B) {
	for _, n := range sizes {
		h, nets := benchData(n)
		ix := NewIndex(h)
		b.Run(fmt.Sprintf("routes=%d/networks=1000", n), func(b *testing.B) {
			var found int
			for b.Loop() {
				found = len(CheckAll(ix, nets))
			}
			b.ReportMetric(float64(found), "conflicts")
		})
	}
}

// BenchmarkCheckAllNaive is the linear-scan reference on the same data. It
// takes about a second per operation at 100k routes.
func BenchmarkCheckAllNaive(b *testing.B) {
	for _, n := range sizes {
		h, nets := benchData(n)
		b.Run(fmt.Sprintf("routes=%d/networks=1000", n), func(b *testing.B) {
			var found int
			for b.Loop() {
				found = len(naiveCheck(h, nets))
			}
			b.ReportMetric(float64(found), "conflicts")
		})
	}
}

// BenchmarkCheckOverlaps: 1,000 networks against each other.
func BenchmarkCheckOverlaps(b *testing.B) {
	_, nets := benchData(1000)
	b.Run("networks=1000", func(b *testing.B) {
		var found int
		for b.Loop() {
			found = len(CheckOverlaps(nets))
		}
		b.ReportMetric(float64(found), "conflicts")
	})
}

// BenchmarkAllocate: an IPv4 and an IPv6 subnet among the host's routes
// and 1,000 other networks (whose 2,000 subnets are loaded into the
// Occupied each time), with 192.168 crowded: the host has 192.168.0.0/17
// routed, the networks many /24s above it.
func BenchmarkAllocate(b *testing.B) {
	for _, n := range sizes {
		h, nets := benchData(n)
		h.Routes = append(h.Routes, HostRoute{Dst: pfx("192.168.0.0/17"), Interface: "wg0", Table: 51820})
		ix := NewIndex(h)
		var others []netip.Prefix
		for _, net := range nets {
			others = append(others, net.Subnets...)
		}
		for i := 128; i < 250; i++ {
			others = append(others, netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 168, byte(i), 0}), 24))
		}
		b.Run(fmt.Sprintf("routes=%d/networks=1000", n), func(b *testing.B) {
			for b.Loop() {
				occ := NewOccupied(ix, others, nil)
				if _, err := occ.Allocate(Request{Family: IPv4, Direction: Down}); err != nil {
					b.Fatal(err)
				}
				if _, err := occ.Allocate(Request{Family: IPv4, Direction: Up}); err != nil {
					b.Fatal(err)
				}
				if _, err := occ.Allocate(Request{Family: IPv6, Network: "x", ULA: testULA}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkAllocateFallback: 192.168 and most of 10/8 full, one /24 free
// deep in 10/8; the Occupied is built once, as a Planner would.
func BenchmarkAllocateFallback(b *testing.B) {
	h, nets := benchData(100_000)
	h.Routes = append(h.Routes, HostRoute{Dst: pfx("192.168.0.0/16"), Interface: "wg0", Table: 51820})
	var others []netip.Prefix
	for _, net := range nets {
		others = append(others, net.Subnets...)
	}
	for i := 0; i < 256; i++ { // 10.i.0.0/16 full except one /24 in 10.200
		if i != 200 {
			others = append(others, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i), 0, 0}), 16))
		}
	}
	for j := 0; j < 256; j++ {
		if j != 77 {
			others = append(others, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 200, byte(j), 0}), 24))
		}
	}
	occ := NewOccupied(NewIndex(h), others, nil)
	b.Run("routes=100000/networks=1000", func(b *testing.B) {
		for b.Loop() {
			p, err := occ.Allocate(Request{Family: IPv4, Direction: Up})
			if err != nil || (p != pfx("10.200.77.0/24") && !p.Addr().Is4()) {
				b.Fatal(p, err)
			}
		}
	})
}

// BenchmarkPlan: renumber one dual-stack network that clashes on both.
func BenchmarkPlan(b *testing.B) {
	for _, n := range sizes {
		h, nets := benchData(n)
		n0 := Network{Name: "default", Bridge: "virbr0", Subnets: []netip.Prefix{pfx("192.168.122.0/24"), pfx("10.0.3.0/24")}}
		ix := NewIndex(h)
		var others []netip.Prefix
		for _, net := range nets {
			others = append(others, net.Subnets...)
		}
		found := ix.Check(n0)
		if len(found) < 2 {
			b.Fatalf("bench data: %+v", found)
		}
		pl := &Planner{Occupied: NewOccupied(ix, others, nil), ULA: testULA}
		b.Run(fmt.Sprintf("routes=%d/networks=1000", n), func(b *testing.B) {
			for b.Loop() {
				if _, err := pl.Plan(n0, found); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

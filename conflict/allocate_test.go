package conflict

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
)

var testULA = ULAGlobalID{0x12, 0x34, 0x56, 0x78, 0x9a}

func TestAllocateDirection(t *testing.T) {
	occ := NewOccupied(NewIndex(HostView{}), nil, nil)
	down, err := occ.Allocate(Request{Family: IPv4, Direction: Down})
	if err != nil || down != pfx("192.168.254.0/24") {
		t.Fatalf("bare metal: %v %v", down, err)
	}
	up, err := occ.Allocate(Request{Family: IPv4, Direction: Up})
	if err != nil || up != pfx("192.168.1.0/24") {
		t.Fatalf("guest: %v %v", up, err)
	}
}

func TestAllocateRememberedFirst(t *testing.T) {
	host := HostView{Addresses: []HostAddress{{Prefix: pfx("192.168.77.3/24"), Interface: "eth0"}}}
	occ := NewOccupied(NewIndex(host), nil, nil)
	got, _ := occ.Allocate(Request{Family: IPv4, Remembered: []netip.Prefix{pfx("192.168.77.0/24"), pfx("192.168.200.0/24")}})
	if got != pfx("192.168.200.0/24") {
		t.Fatalf("occupied remembered subnet must be skipped, the next used: %v", got)
	}
	got, _ = occ.Allocate(Request{Family: IPv4, Remembered: []netip.Prefix{pfx("fd00::/64"), pfx("10.5.0.0/16")}})
	if got != pfx("192.168.254.0/24") {
		t.Fatalf("remembered subnets of the wrong family or size must be skipped: %v", got)
	}
}

func TestAllocateFallsBackWhen192168IsFull(t *testing.T) {
	occ := NewOccupied(NewIndex(HostView{Routes: []HostRoute{{Dst: pfx("192.168.0.0/16"), Interface: "vpn", Table: 254}}}), nil, nil)
	got, err := occ.Allocate(Request{Family: IPv4, Direction: Up})
	if err != nil || got != pfx("10.0.0.0/24") {
		t.Fatalf("up: %v %v", got, err)
	}
	got, _ = occ.Allocate(Request{Family: IPv4, Direction: Down})
	if got != pfx("10.255.255.0/24") {
		t.Fatalf("down: %v", got)
	}
	full := NewOccupied(nil, []netip.Prefix{pfx("192.168.0.0/16"), pfx("10.0.0.0/8"), pfx("172.16.0.0/12")}, nil)
	if _, err := full.Allocate(Request{Family: IPv4}); !errors.Is(err, ErrExhausted) {
		t.Fatalf("all pools full: %v", err)
	}
}

func TestAllocateRejectsAbsurdRequests(t *testing.T) {
	occ := NewOccupied(nil, nil, nil)
	for _, r := range []Request{
		{Family: IPv4, Bits: 33}, {Family: IPv4, Bits: 2}, {Family: IPv4, Bits: 31}, {Family: IPv4, Bits: -1},
		{Family: IPv4, Pools: []Pool{{Prefix: pfx("10.0.0.0/8"), Bits: 32}}},
		{Family: IPv4, Pools: []Pool{{Prefix: pfx("fd00::/8"), Bits: 24}}},
		{Family: IPv6, Bits: 48}, {Family: IPv6, Bits: 128}, {Family: 5}, {},
		{Family: IPv6, Usable: map[Family]bool{IPv4: true, IPv6: false}},
	} {
		if p, err := occ.Allocate(r); err == nil {
			t.Errorf("%+v: got %v, want an error", r, p)
		}
	}
}

func TestNilOccupied(t *testing.T) {
	var o *Occupied
	if !o.Free(pfx("10.0.0.0/8")) || o.Free(netip.Prefix{}) {
		t.Fatal("a nil Occupied occupies nothing, and an invalid prefix is never free")
	}
	if p, err := o.Allocate(Request{Family: IPv4, Direction: Up}); err != nil || p != pfx("192.168.1.0/24") {
		t.Fatalf("%v %v", p, err)
	}
	if w := o.With(pfx("192.168.1.0/24")); w.Free(pfx("192.168.1.128/25")) || o != nil {
		t.Fatal("With")
	}
}

func TestAllocateIPv6(t *testing.T) {
	occ := NewOccupied(nil, nil, nil)
	a, err := occ.Allocate(Request{Family: IPv6, Network: "default", ULA: testULA})
	if err != nil || a.Bits() != 64 || !testULA.Prefix48().Overlaps(a) {
		t.Fatalf("%v %v", a, err)
	}
	b, _ := occ.Allocate(Request{Family: IPv6, Network: "default", ULA: testULA})
	if a != b {
		t.Fatalf("not stable for one network: %v %v", a, b)
	}
	c, _ := occ.Allocate(Request{Family: IPv6, Network: "other", ULA: testULA})
	if c == a {
		t.Fatalf("two networks start at the same subnet ID")
	}
	taken := NewOccupied(nil, []netip.Prefix{a}, nil)
	d, _ := taken.Allocate(Request{Family: IPv6, Network: "default", ULA: testULA})
	if d == a || !testULA.Prefix48().Overlaps(d) {
		t.Fatalf("taken subnet reused: %v", d)
	}
	if testULA.Prefix48() != pfx("fd12:3456:789a::/48") {
		t.Fatalf("prefix48 %v", testULA.Prefix48())
	}
}

// randomView makes a host with n routes spread over tables and families.
func randomView(rng *rand.Rand, n int) HostView {
	var h HostView
	for i := 0; i < n; i++ {
		if rng.IntN(4) == 0 {
			var a [16]byte
			a[0] = 0xfd
			for j := 1; j < 8; j++ {
				a[j] = byte(rng.IntN(256))
			}
			h.Routes = append(h.Routes, HostRoute{Dst: netip.PrefixFrom(netip.AddrFrom16(a), 48+rng.IntN(17)).Masked(), Interface: "wg0", Table: 254 + rng.IntN(3)*100})
			continue
		}
		b := [4]byte{[]byte{10, 172, 192}[rng.IntN(3)], byte(rng.IntN(256)), byte(rng.IntN(256)), 0}
		if b[0] == 192 {
			b[1] = 168
		}
		bits := 16 + rng.IntN(13)
		p := netip.PrefixFrom(netip.AddrFrom4(b), bits).Masked()
		if rng.IntN(3) == 0 {
			h.Addresses = append(h.Addresses, HostAddress{Prefix: p, Interface: "eth0"})
		} else {
			h.Routes = append(h.Routes, HostRoute{Dst: p, Interface: "eth1", Table: []int{254, 51820, 100}[rng.IntN(3)]})
		}
	}
	return h
}

func TestAllocateNeverOverlaps(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 200; round++ {
		h := randomView(rng, rng.IntN(400))
		for i := rng.IntN(30); i > 0; i-- { // crowd the ULA /48 too
			a := testULA.Subnet(ULASubnetID("n") + uint16(rng.IntN(64))).Addr().As16()
			a[7] ^= byte(rng.IntN(4))
			h.Routes = append(h.Routes, HostRoute{Dst: netip.PrefixFrom(netip.AddrFrom16(a), 52+rng.IntN(13)).Masked(), Interface: "wg0", Table: 51820})
		}
		ix := NewIndex(h)
		var others, reserved []netip.Prefix
		for i := 0; i < rng.IntN(20); i++ {
			others = append(others, netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 168, byte(rng.IntN(256)), 0}), 24))
		}
		if rng.IntN(2) == 0 {
			reserved = append(reserved, pfx("192.168.128.0/17"))
		}
		occ := NewOccupied(ix, others, reserved)
		fam := IPv4
		if rng.IntN(3) == 0 {
			fam = IPv6
		}
		var remembered []netip.Prefix
		for i := rng.IntN(4); i > 0; i-- {
			remembered = append(remembered, netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 168, byte(rng.IntN(256)), 0}), 24), testULA.Subnet(uint16(rng.IntN(4))))
		}
		if rng.IntN(2) == 0 {
			added := netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 168, byte(rng.IntN(256)), 0}), 20).Masked()
			occ = occ.With(added)
			reserved = append(reserved, added)
		}
		got, err := occ.Allocate(Request{Family: fam, Network: "n", ULA: testULA, Direction: Direction(rng.IntN(2)), Remembered: remembered})
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if fam == IPv6 && (got.Bits() != 64 || !testULA.Prefix48().Contains(got.Addr())) && !slices.Contains(remembered, got) {
			t.Fatalf("round %d: %v not a /64 of %v", round, got, testULA.Prefix48())
		}
		if FamilyOf(got) != fam || got != got.Masked() {
			t.Fatalf("round %d: %v", round, got)
		}
		for _, a := range h.Addresses {
			if !ignorable(a.Prefix.Masked()) && a.Prefix.Masked().Overlaps(got) {
				t.Fatalf("round %d: %v overlaps address %v", round, got, a.Prefix)
			}
		}
		for _, r := range h.Routes {
			if !ignorable(r.Dst) && r.Dst.Overlaps(got) {
				t.Fatalf("round %d: %v overlaps route %v", round, got, r.Dst)
			}
		}
		for _, o := range append(others, reserved...) {
			if o.Overlaps(got) {
				t.Fatalf("round %d: %v overlaps %v", round, got, o)
			}
		}
	}
}

// linearFirst is the obvious allocator walk, the oracle for walker: every
// candidate in order, the first free one.
func linearFirst(o *Occupied, pool Pool, bits int, dir Direction) (netip.Prefix, bool) {
	base := pool.Prefix.Masked()
	count := uint32(1) << (bits - base.Bits())
	start := ipv4ToUint(base.Addr())
	for i := uint32(0); i < count; i++ {
		n := i
		if dir == Down {
			n = count - 1 - i
		}
		cand := netip.PrefixFrom(uintToIPv4(start+n<<(32-bits)), bits)
		if slices.ContainsFunc(pool.Exclude, cand.Overlaps) || !o.Free(cand) {
			continue
		}
		return cand, true
	}
	return netip.Prefix{}, false
}

func ipv4ToUint(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func uintToIPv4(u uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(u >> 24), byte(u >> 16), byte(u >> 8), byte(u)})
}

// TestWalkerAgreesWithLinear: on crowded random pools the tree walk finds
// exactly the candidate the linear walk does.
func TestWalkerAgreesWithLinear(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for round := 0; round < 3000; round++ {
		base := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(rng.IntN(256)), 0, 0}), 14+rng.IntN(4)).Masked()
		bits := base.Bits() + 1 + rng.IntN(10)
		rand4 := func(minBits int) netip.Prefix {
			a := ipv4ToUint(base.Addr()) + uint32(rng.Uint64()>>32)>>base.Bits()
			return netip.PrefixFrom(uintToIPv4(a), minBits+rng.IntN(33-minBits)).Masked()
		}
		var others []netip.Prefix
		for i := rng.IntN(1 << rng.IntN(9)); i > 0; i-- {
			others = append(others, rand4(base.Bits()))
		}
		var h HostView
		for i := rng.IntN(40); i > 0; i-- {
			h.Routes = append(h.Routes, HostRoute{Dst: rand4(base.Bits() - 2), Interface: "eth0", Table: 254})
		}
		pool := Pool{Prefix: base, Bits: bits}
		if rng.IntN(2) == 0 {
			pool.Exclude = []netip.Prefix{rand4(base.Bits() + 1)}
		}
		o := NewOccupied(NewIndex(h), others, nil)
		if rng.IntN(3) == 0 {
			o = o.With(rand4(base.Bits()))
		}
		for _, dir := range []Direction{Up, Down} {
			want, wok := linearFirst(o, pool, bits, dir)
			got, err := o.Allocate(Request{Family: IPv4, Pools: []Pool{pool}, Direction: dir})
			if (err == nil) != wok || got != want {
				t.Fatalf("round %d %v pool %v /%d: tree walk %v %v, linear %v %v", round, dir, base, bits, got, err, want, wok)
			}
		}
	}
}

// TestULAProbeOrder: subnet IDs from the name's hash onward, wrapping.
func TestULAProbeOrder(t *testing.T) {
	id := ULASubnetID("default")
	var others []netip.Prefix
	for i := 0; i < 5; i++ {
		others = append(others, testULA.Subnet(id+uint16(i)))
	}
	got, err := NewOccupied(nil, others, nil).Allocate(Request{Family: IPv6, Network: "default", ULA: testULA})
	if err != nil || got != testULA.Subnet(id+5) {
		t.Fatalf("got %v %v, want %v", got, err, testULA.Subnet(id+5))
	}
	// Everything from the start to the top is taken: wrap round to 0.
	var rest []netip.Prefix
	for i := uint32(id); i <= 0xffff; i++ {
		rest = append(rest, testULA.Subnet(uint16(i)))
	}
	got, err = NewOccupied(nil, rest, nil).Allocate(Request{Family: IPv6, Network: "default", ULA: testULA})
	if err != nil || got != testULA.Subnet(0) {
		t.Fatalf("wrap: got %v %v", got, err)
	}
	// The whole /48 routed elsewhere: exhausted at once.
	full := NewOccupied(NewIndex(HostView{Routes: []HostRoute{{Dst: testULA.Prefix48(), Interface: "wg0", Table: 51820}}}), nil, nil)
	if _, err := full.Allocate(Request{Family: IPv6, Network: "default", ULA: testULA}); !errors.Is(err, ErrExhausted) {
		t.Fatalf("full /48: %v", err)
	}
	// Only one /64 left, far from the start.
	var all []netip.Prefix
	for i := 0; i <= 0xffff; i++ {
		if uint16(i) != id-1 {
			all = append(all, testULA.Subnet(uint16(i)))
		}
	}
	got, err = NewOccupied(nil, all, nil).Allocate(Request{Family: IPv6, Network: "default", ULA: testULA})
	if err != nil || got != testULA.Subnet(id-1) {
		t.Fatalf("last one: got %v %v", got, err)
	}
}

func TestAllocateUsable(t *testing.T) {
	occ := NewOccupied(nil, nil, nil)
	if _, err := occ.Allocate(Request{Family: IPv6, ULA: testULA, Usable: map[Family]bool{IPv4: true}}); !errors.Is(err, ErrUnusable) {
		t.Fatalf("IPv6 offered though not usable: %v", err)
	}
	if _, err := occ.Allocate(Request{Family: IPv4, Usable: map[Family]bool{IPv6: true}}); !errors.Is(err, ErrUnusable) {
		t.Fatalf("IPv4 offered though not usable: %v", err)
	}
	for _, u := range []map[Family]bool{nil, {IPv6: true}} {
		p, err := occ.Allocate(Request{Family: IPv6, ULA: testULA, Network: "x", Usable: u})
		if err != nil || p.Bits() != 64 || !testULA.Prefix48().Contains(p.Addr()) {
			t.Fatalf("usable %v: %v %v", u, p, err)
		}
	}
}

func TestAllocatePoolsAndSizes(t *testing.T) {
	occ := NewOccupied(nil, []netip.Prefix{pfx("10.200.0.0/24")}, nil)
	pools := []Pool{{Prefix: pfx("10.200.0.0/16"), Bits: 24}, {Prefix: pfx("172.20.0.0/14"), Bits: 26}}
	if got, _ := occ.Allocate(Request{Family: IPv4, Pools: pools, Direction: Up}); got != pfx("10.200.1.0/24") {
		t.Fatalf("first pool, own size: %v", got)
	}
	full := occ.With(pfx("10.200.0.0/16"))
	if got, _ := full.Allocate(Request{Family: IPv4, Pools: pools, Direction: Down}); got != pfx("172.23.255.192/26") {
		t.Fatalf("second pool, its own size: %v", got)
	}
	if got, _ := occ.Allocate(Request{Family: IPv4, Pools: pools, Bits: 15, Direction: Up}); got != pfx("172.20.0.0/15") {
		t.Fatalf("a size too large for the first pool passes it over: %v", got)
	}
	if _, err := occ.Allocate(Request{Family: IPv4, Pools: pools, Bits: 12}); err == nil {
		t.Fatal("no pool holds a /12")
	}
	if _, err := occ.Allocate(Request{Family: IPv4, Pools: []Pool{}}); !errors.Is(err, ErrExhausted) {
		t.Fatalf("no pools: %v", err)
	}
	if got, _ := NewOccupied(nil, nil, nil).Allocate(Request{Family: IPv4, Bits: 16, Direction: Up}); got != pfx("10.0.0.0/16") {
		t.Fatalf("/16 skips 192.168/16 (its ends are excluded): %v", got)
	}
}

func TestDefaultPoolsSkipEnds(t *testing.T) {
	var others []netip.Prefix
	for n := 2; n <= 253; n++ {
		others = append(others, netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 168, byte(n), 0}), 24))
	}
	occ := NewOccupied(nil, others, nil)
	up, _ := occ.Allocate(Request{Family: IPv4, Direction: Up})
	down, _ := occ.Allocate(Request{Family: IPv4, Direction: Down})
	if up != pfx("192.168.1.0/24") || down != pfx("192.168.254.0/24") {
		t.Fatalf("up %v down %v", up, down)
	}
	occ = occ.With(up, down)
	if got, _ := occ.Allocate(Request{Family: IPv4, Direction: Up}); got != pfx("10.0.0.0/24") {
		t.Fatalf("192.168.0.0 and .255 must never be handed out: %v", got)
	}
}

package conflict

import (
	"errors"
	"math/rand/v2"
	"net/netip"
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
		{Family: IPv4, Bits: 33}, {Family: IPv4, Bits: 2}, {Family: IPv4, Bits: 31},
		{Family: IPv6, Bits: 48}, {Family: 5},
		{Family: IPv6, Usable: map[Family]bool{IPv4: true, IPv6: false}},
	} {
		if p, err := occ.Allocate(r); err == nil {
			t.Errorf("%+v: got %v, want an error", r, p)
		}
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
		got, err := occ.Allocate(Request{Family: fam, Network: "n", ULA: testULA, Direction: Direction(rng.IntN(2))})
		if err != nil {
			continue
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

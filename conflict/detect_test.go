package conflict

import (
	"math/rand/v2"
	"net/netip"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func TestCheckRules(t *testing.T) {
	net122 := Network{Name: "default", Bridge: "virbr0", Ports: []string{"vnet0"}, Subnets: []netip.Prefix{pfx("192.168.122.0/24")}}
	cases := []struct {
		name   string
		host   HostView
		net    Network
		want   int
		routed bool
		reason string
	}{
		{"same subnet address", HostView{Addresses: []HostAddress{{Prefix: pfx("192.168.122.57/24"), Interface: "wlan0"}}}, net122, 1, false, "is also the subnet of address 192.168.122.57/24 on wlan0"},
		{"wider route covers the network", HostView{Routes: []HostRoute{{Dst: pfx("192.168.0.0/16"), Interface: "wg0", Table: 51820}}}, net122, 1, false, "lies inside route 192.168.0.0/16 dev wg0 table 51820"},
		{"narrower route inside the network", HostView{Routes: []HostRoute{{Dst: pfx("192.168.122.128/25"), Interface: "eth0", Table: 254}}}, net122, 1, false, "contains route 192.168.122.128/25 dev eth0 table main"},
		{"routed prefix marked", HostView{Routes: []HostRoute{{Dst: pfx("192.168.122.0/24"), Gateway: netip.MustParseAddr("10.0.0.1"), Interface: "eth0", Table: 254}}}, net122, 1, true, "via 10.0.0.1"},
		{"blackhole in a kill switch counts", HostView{Routes: []HostRoute{{Dst: pfx("192.168.0.0/16"), Type: "blackhole", Table: 100}}}, net122, 1, false, "blackhole route"},
		{"own bridge skipped", HostView{Addresses: []HostAddress{{Prefix: pfx("192.168.122.1/24"), Interface: "virbr0"}}, Routes: []HostRoute{{Dst: pfx("192.168.122.0/24"), Interface: "virbr0", Table: 254}}}, net122, 0, false, ""},
		{"own port skipped", HostView{Routes: []HostRoute{{Dst: pfx("192.168.122.0/24"), Interface: "vnet0", Table: 254}}}, net122, 0, false, ""},
		{"default route skipped", HostView{Routes: []HostRoute{{Dst: pfx("0.0.0.0/0"), Gateway: netip.MustParseAddr("10.0.0.1"), Table: 254}, {Dst: pfx("::/0"), Table: 254}}}, net122, 0, false, ""},
		{"full-tunnel halves skipped", HostView{Routes: []HostRoute{{Dst: pfx("0.0.0.0/1"), Interface: "tun0", Table: 254}, {Dst: pfx("128.0.0.0/1"), Interface: "tun0", Table: 254}}}, net122, 0, false, ""},
		{"local and broadcast routes that mirror an address add nothing", HostView{
			Addresses: []HostAddress{{Prefix: pfx("192.168.122.57/24"), Interface: "wlan0"}},
			Routes: []HostRoute{{Dst: pfx("192.168.122.57/32"), Type: "local", Interface: "wlan0", Table: 255}, {Dst: pfx("192.168.122.255/32"), Type: "broadcast", Interface: "wlan0", Table: 255},
				{Dst: pfx("192.168.122.57/32"), Type: "local", Interface: "eth9", Table: 255}}}, net122, 1, false, "address 192.168.122.57/24 on wlan0"},
		{"local route mirroring no address counts (AnyIP)", HostView{Routes: []HostRoute{{Dst: pfx("192.168.0.0/16"), Type: "local", Interface: "lo", Table: 255}}}, net122, 1, false, "lies inside local route 192.168.0.0/16 dev lo table local"},
		{"address and its kernel route are two records", HostView{Addresses: []HostAddress{{Prefix: pfx("192.168.122.57/24"), Interface: "wlan0"}}, Routes: []HostRoute{{Dst: pfx("192.168.122.0/24"), Interface: "wlan0", Table: 254, Scope: "link", Protocol: "kernel"}}}, net122, 2, false, "address"},
		{"host-scope address that is not loopback counts", HostView{Addresses: []HostAddress{{Prefix: pfx("192.168.122.9/32"), Interface: "lo", Scope: "host"}}}, net122, 1, false, "contains the subnet of address 192.168.122.9/32 on lo"},
		{"unreachable route counts", HostView{Routes: []HostRoute{{Dst: pfx("192.168.122.0/24"), Type: "unreachable", Table: 254}}}, net122, 1, false, "unreachable route"},
		{"prohibit route in a policy table counts", HostView{Routes: []HostRoute{{Dst: pfx("fd00::/8"), Type: "prohibit", Table: 51820}}}, Network{Name: "v6", Subnets: []netip.Prefix{pfx("fd12:3456:789a:1::/64")}}, 1, false, "prohibit route fd00::/8 table 51820"},
		{"throw and multicast-type routes skipped", HostView{Routes: []HostRoute{{Dst: pfx("192.168.0.0/16"), Type: "throw", Table: 51820}, {Dst: pfx("192.168.122.0/24"), Type: "multicast", Interface: "eth0", Table: 255}}}, net122, 0, false, ""},
		{"non-main table route counts", HostView{Routes: []HostRoute{{Dst: pfx("192.168.122.0/24"), Interface: "wg0", Table: 51820, Gateway: netip.MustParseAddr("10.7.0.1")}}}, net122, 1, true, "is also the destination of route 192.168.122.0/24 via 10.7.0.1 dev wg0 table 51820"},
		{"on-link route is not routed", HostView{Routes: []HostRoute{{Dst: pfx("192.168.122.0/24"), Interface: "eth0", Table: 254, Scope: "link"}}}, net122, 1, false, "table main"},
		{"ipv6 full-tunnel halves skipped", HostView{Routes: []HostRoute{{Dst: pfx("::/1"), Interface: "tun0", Table: 254}, {Dst: pfx("8000::/1"), Interface: "tun0", Table: 254}}}, Network{Name: "v6", Subnets: []netip.Prefix{pfx("fd12:3456:789a:1::/64")}}, 0, false, ""},
		{"ipv6 address inside the network", HostView{Addresses: []HostAddress{{Prefix: pfx("fd12:3456:789a:1::5/64"), Interface: "eth0", Scope: "global"}}}, Network{Name: "v6", Subnets: []netip.Prefix{pfx("fd12:3456:789a:1::/64")}}, 1, false, "is also the subnet of address fd12:3456:789a:1::5/64 on eth0"},
		{"ipv6 narrower route inside the network", HostView{Routes: []HostRoute{{Dst: pfx("fd12:3456:789a:1:8000::/65"), Interface: "eth0", Table: 254}}}, Network{Name: "v6", Subnets: []netip.Prefix{pfx("fd12:3456:789a:1::/64")}}, 1, false, "contains route"},
		{"families never mix", HostView{Routes: []HostRoute{{Dst: pfx("::ffff:192.168.122.0/120"), Interface: "eth0", Table: 254}, {Dst: pfx("fd00::/8"), Interface: "eth0", Table: 254}}}, net122, 0, false, ""},
		{"unmasked network subnet is masked", HostView{Routes: []HostRoute{{Dst: pfx("192.168.122.0/25"), Interface: "eth0", Table: 254}}}, Network{Name: "n", Subnets: []netip.Prefix{pfx("192.168.122.1/24")}}, 1, false, "192.168.122.0/24 contains"},
		{"ownerless blackhole is never own", HostView{Routes: []HostRoute{{Dst: pfx("192.168.122.0/24"), Type: "blackhole", Table: 254}}}, Network{Name: "n", Subnets: []netip.Prefix{pfx("192.168.122.0/24")}}, 1, false, "blackhole"},
		{"loopback and link-local skipped", HostView{Addresses: []HostAddress{{Prefix: pfx("127.0.0.1/8"), Interface: "lo", Scope: "host"}, {Prefix: pfx("169.254.3.3/16"), Interface: "eth0"}}}, Network{Name: "n", Subnets: []netip.Prefix{pfx("169.254.0.0/16"), pfx("127.0.0.0/8")}}, 0, false, ""},
		{"multicast skipped", HostView{Routes: []HostRoute{{Dst: pfx("224.0.0.0/4"), Interface: "eth0", Table: 254}}}, Network{Name: "n", Subnets: []netip.Prefix{pfx("224.1.0.0/16")}}, 0, false, ""},
		{"disjoint is no clash", HostView{Addresses: []HostAddress{{Prefix: pfx("192.168.123.5/24"), Interface: "eth0"}}}, net122, 0, false, ""},
		{"ipv6 covering route", HostView{Routes: []HostRoute{{Dst: pfx("fd00::/8"), Interface: "wg0", Table: 51820}}}, Network{Name: "v6", Subnets: []netip.Prefix{pfx("fd12:3456:789a:1::/64")}}, 1, false, "lies inside route fd00::/8"},
		{"ipv6 link-local route skipped", HostView{Routes: []HostRoute{{Dst: pfx("fe80::/64"), Interface: "eth0", Table: 254}}}, Network{Name: "v6", Subnets: []netip.Prefix{pfx("fe80::/10")}}, 0, false, ""},
		{"proxy NDP: the uplink's address and on-link route inside the shared /64 are no clash",
			HostView{Addresses: []HostAddress{{Prefix: pfx("2001:db8:1::10/64"), Interface: "eth0", Scope: "global"}},
				Routes: []HostRoute{{Dst: pfx("2001:db8:1::/64"), Interface: "eth0", Table: 254}, {Dst: pfx("2001:db8:1::10/128"), Type: "local", Interface: "eth0", Table: 255}}},
			Network{Name: "pub", Bridge: "vbr", Subnets: []netip.Prefix{pfx("2001:db8:1::/64")}, Shared: []Shared{{Iface: "eth0", Subnet: pfx("2001:db8:1::/64")}}}, 0, false, ""},
		{"proxy NDP: the shared /64 on another interface still clashes",
			HostView{Routes: []HostRoute{{Dst: pfx("2001:db8:1::/64"), Interface: "wg0", Table: 254}}},
			Network{Name: "pub", Bridge: "vbr", Subnets: []netip.Prefix{pfx("2001:db8:1::/64")}, Shared: []Shared{{Iface: "eth0", Subnet: pfx("2001:db8:1::/64")}}}, 1, false, "wg0"},
		{"proxy NDP: a wider route on the uplink is not inside the shared /64",
			HostView{Routes: []HostRoute{{Dst: pfx("2001:db8::/32"), Interface: "eth0", Table: 254}}},
			Network{Name: "pub", Bridge: "vbr", Subnets: []netip.Prefix{pfx("2001:db8:1::/64")}, Shared: []Shared{{Iface: "eth0", Subnet: pfx("2001:db8:1::/64")}}}, 1, false, "2001:db8::/32"},
		{"one conflict per host entry", HostView{Addresses: []HostAddress{{Prefix: pfx("192.168.122.57/24"), Interface: "wlan0"}, {Prefix: pfx("192.168.122.57/24"), Interface: "wlan0"}}}, net122, 1, false, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := NewIndex(c.host).Check(c.net)
			if len(got) != c.want {
				t.Fatalf("got %d conflicts, want %d: %+v", len(got), c.want, got)
			}
			if c.want == 0 {
				return
			}
			if got[0].Routed != c.routed {
				t.Errorf("routed = %v, want %v", got[0].Routed, c.routed)
			}
			if !strings.Contains(got[0].Reason, c.reason) {
				t.Errorf("reason %q lacks %q", got[0].Reason, c.reason)
			}
			if got[0].Network != c.net.Name || !got[0].Subnet.IsValid() {
				t.Errorf("record incomplete: %+v", got[0])
			}
		})
	}
}

func TestCheckAllSortedAndPerNetwork(t *testing.T) {
	host := HostView{Routes: []HostRoute{{Dst: pfx("10.0.0.0/8"), Interface: "vpn", Table: 254}, {Dst: pfx("10.1.0.0/16"), Interface: "eth1", Table: 254}}}
	nets := []Network{{Name: "b", Subnets: []netip.Prefix{pfx("10.1.2.0/24")}}, {Name: "a", Subnets: []netip.Prefix{pfx("10.9.0.0/24")}}}
	got := CheckAll(NewIndex(host), nets)
	if len(got) != 3 || got[0].Network != "b" || got[2].Network != "a" {
		t.Fatalf("%+v", got)
	}
	if got[0].Host != pfx("10.0.0.0/8") || got[1].Host != pfx("10.1.0.0/16") {
		t.Fatalf("not sorted by host prefix: %+v", got)
	}
}

func TestCheckOverlaps(t *testing.T) {
	nets := []Network{
		{Name: "default", Bridge: "virbr0", Subnets: []netip.Prefix{pfx("192.168.122.0/24"), pfx("fd00:1::/64")}},
		{Name: "lab", Bridge: "virbr1", Subnets: []netip.Prefix{pfx("192.168.0.0/16")}},
		{Name: "iso", Bridge: "virbr2", Subnets: []netip.Prefix{pfx("10.9.0.0/24")}},
		{Name: "twin", Subnets: []netip.Prefix{pfx("fd00:1::/64")}},
	}
	got := CheckOverlaps(nets)
	want := []string{
		"default 192.168.122.0/24 192.168.0.0/16 virbr1",
		"default fd00:1::/64 fd00:1::/64 ",
		"lab 192.168.0.0/16 192.168.122.0/24 virbr0",
		"twin fd00:1::/64 fd00:1::/64 virbr0",
	}
	if len(got) != len(want) {
		t.Fatalf("got %d, want %d: %+v", len(got), len(want), got)
	}
	for i, c := range got {
		if s := c.Network + " " + c.Subnet.String() + " " + c.Host.String() + " " + c.Interface; s != want[i] || c.Kind != KindNetwork {
			t.Errorf("%d: %q (%s), want %q", i, s, c.Kind, want[i])
		}
	}
	if !strings.Contains(got[0].Reason, "lies inside subnet 192.168.0.0/16 of virtual network lab (bridge virbr1)") {
		t.Errorf("reason: %s", got[0].Reason)
	}
	if CheckOverlaps(nets[2:3]) != nil {
		t.Errorf("a network alone overlaps nothing")
	}
}

func TestCheckDeterministic(t *testing.T) {
	h := HostView{
		Addresses: []HostAddress{{Prefix: pfx("10.1.2.3/24"), Interface: "eth0"}, {Prefix: pfx("10.1.2.4/24"), Interface: "eth1"}},
		Routes: []HostRoute{{Dst: pfx("10.0.0.0/8"), Interface: "tun0", Table: 254}, {Dst: pfx("10.1.0.0/16"), Table: 100, Type: "blackhole"},
			{Dst: pfx("10.1.2.0/24"), Interface: "eth0", Table: 254}, {Dst: pfx("10.1.2.128/25"), Interface: "eth0", Table: 7, Gateway: netip.MustParseAddr("10.1.2.1")}},
	}
	n := Network{Name: "n", Subnets: []netip.Prefix{pfx("10.1.2.0/24")}}
	first := NewIndex(h).Check(n)
	if len(first) != 6 {
		t.Fatalf("want 6 conflicts: %+v", first)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 20; i++ {
		rng.Shuffle(len(h.Routes), func(a, b int) { h.Routes[a], h.Routes[b] = h.Routes[b], h.Routes[a] })
		rng.Shuffle(len(h.Addresses), func(a, b int) { h.Addresses[a], h.Addresses[b] = h.Addresses[b], h.Addresses[a] })
		if got := NewIndex(h).Check(n); !slices.Equal(got, first) {
			t.Fatalf("order depends on input order:\n%+v\n%+v", got, first)
		}
	}
	if !slices.IsSortedFunc(first, CompareConflicts) {
		t.Fatal("not sorted")
	}
}

func TestNilAndEmptyIndex(t *testing.T) {
	var ix *Index
	if ix.Check(Network{Name: "n", Subnets: []netip.Prefix{pfx("10.0.0.0/8")}}) != nil || ix.Len() != 0 {
		t.Fatal("nil index must be an empty host")
	}
	if NewIndex(HostView{}).Check(Network{Name: "n", Subnets: []netip.Prefix{{}, pfx("10.0.0.0/8")}}) != nil {
		t.Fatal("empty host clashes with nothing")
	}
}

// TestSampleHostState reads testdata/host-state.json: a laptop on hotel
// Wi-Fi that uses 192.168.122.0/24, with a WireGuard policy table.
func TestSampleHostState(t *testing.T) {
	data, err := os.ReadFile("testdata/host-state.json")
	if err != nil {
		t.Fatal(err)
	}
	h, err := ParseHostState(data)
	if err != nil {
		t.Fatal(err)
	}
	ix := NewIndex(h)
	def := Network{Name: "default", Bridge: "virbr0", Ports: []string{"vnet0"}, Subnets: []netip.Prefix{pfx("192.168.122.0/24")}}
	got := ix.Check(def)
	var reasons []string
	for _, c := range got {
		reasons = append(reasons, c.Kind+" "+c.Host.String()+" "+c.Interface)
	}
	want := []string{"address 192.168.122.57/24 wlp2s0", "route 192.168.122.0/24 wlp2s0"}
	if !slices.Equal(reasons, want) {
		t.Fatalf("default network: got %q, want %q", reasons, want)
	}
	// The VPN's policy table carries the office range and a kill switch.
	office := Network{Name: "office-lab", Bridge: "virbr1", Subnets: []netip.Prefix{pfx("10.77.12.0/24"), pfx("fd7a:115c:a1e0:12::/64")}}
	got = ix.Check(office)
	if len(got) != 3 {
		t.Fatalf("office-lab: %+v", got)
	}
	for _, c := range got {
		if c.Table != 51820 {
			t.Errorf("not the VPN table: %+v", c)
		}
	}
	// Nothing else on the laptop clashes with a free range.
	if got := ix.Check(Network{Name: "free", Subnets: []netip.Prefix{pfx("192.168.200.0/24"), pfx("fdaa::/64")}}); got != nil {
		t.Fatalf("free range: %+v", got)
	}
	b, err := MarshalHostState(h)
	if err != nil {
		t.Fatal(err)
	}
	if back, err := ParseHostState(b); err != nil || !reflect.DeepEqual(back, h) {
		t.Fatalf("round trip: %v", err)
	}
}

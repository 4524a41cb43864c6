package conflict

import (
	"net/netip"
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
		{"local and broadcast routes mirror addresses", HostView{Routes: []HostRoute{{Dst: pfx("192.168.122.57/32"), Type: "local", Interface: "wlan0", Table: 255}, {Dst: pfx("192.168.122.255/32"), Type: "broadcast", Interface: "wlan0", Table: 255}}}, net122, 0, false, ""},
		{"loopback and link-local skipped", HostView{Addresses: []HostAddress{{Prefix: pfx("127.0.0.1/8"), Interface: "lo", Scope: "host"}, {Prefix: pfx("169.254.3.3/16"), Interface: "eth0"}}}, Network{Name: "n", Subnets: []netip.Prefix{pfx("169.254.0.0/16"), pfx("127.0.0.0/8")}}, 0, false, ""},
		{"multicast skipped", HostView{Routes: []HostRoute{{Dst: pfx("224.0.0.0/4"), Interface: "eth0", Table: 254}}}, Network{Name: "n", Subnets: []netip.Prefix{pfx("224.1.0.0/16")}}, 0, false, ""},
		{"disjoint is no clash", HostView{Addresses: []HostAddress{{Prefix: pfx("192.168.123.5/24"), Interface: "eth0"}}}, net122, 0, false, ""},
		{"ipv6 covering route", HostView{Routes: []HostRoute{{Dst: pfx("fd00::/8"), Interface: "wg0", Table: 51820}}}, Network{Name: "v6", Subnets: []netip.Prefix{pfx("fd12:3456:789a:1::/64")}}, 1, false, "lies inside route fd00::/8"},
		{"ipv6 link-local route skipped", HostView{Routes: []HostRoute{{Dst: pfx("fe80::/64"), Interface: "eth0", Table: 254}}}, Network{Name: "v6", Subnets: []netip.Prefix{pfx("fe80::/10")}}, 0, false, ""},
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

func TestHostStateRoundTrip(t *testing.T) {
	h := HostView{
		Addresses: []HostAddress{{Prefix: pfx("192.168.1.5/24"), Interface: "eth0", Scope: "global"}},
		Routes:    []HostRoute{{Dst: pfx("10.0.0.0/8"), Interface: "wg0", Table: 51820, Gateway: netip.MustParseAddr("10.9.0.1"), Protocol: "static"}, {Dst: pfx("fd00::/8"), Table: 254}},
	}
	b, err := MarshalHostState(h)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseHostState(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(back.Routes) != 2 || back.Routes[0] != h.Routes[0] || back.Routes[1] != h.Routes[1] || back.Addresses[0] != h.Addresses[0] {
		t.Fatalf("round trip: %+v", back)
	}
}

func TestParseHostStateErrors(t *testing.T) {
	for _, bad := range []string{
		`{"addresses":[{"prefix":"192.168.1.5"}]}`,
		`{"routes":[{"dst":"10.0.0.0/8"},{"dst":"nope"}]}`,
		`{"routes":[{"dst":"10.0.0.0/8","gateway":"fd00::1"}]}`,
		`{"addresses":[],"unknown":1}`,
		`{"addresses":[]} {"again":1}`,
		`[]`,
	} {
		if _, err := ParseHostState([]byte(bad)); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
	_, err := ParseHostState([]byte(`{"routes":[{"dst":"10.0.0.0/8"},{"dst":"nope"}]}`))
	if err == nil || !strings.Contains(err.Error(), "routes[1]") {
		t.Errorf("error does not name the entry: %v", err)
	}
	v, err := ParseHostState([]byte(`{"routes":[{"dst":"10.1.2.3/8"}]}`))
	if err != nil || v.Routes[0].Dst != pfx("10.0.0.0/8") || v.Routes[0].Table != 254 {
		t.Errorf("route not masked or table not defaulted: %+v %v", v, err)
	}
}

func FuzzParseHostState(f *testing.F) {
	f.Add([]byte(`{"addresses":[{"prefix":"192.168.1.5/24","interface":"eth0"}],"routes":[{"dst":"10.0.0.0/8","table":51820,"gateway":"10.0.0.1"}]}`))
	f.Add([]byte(`{"routes":[{"dst":"fd00::/8","type":"blackhole"}]}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := ParseHostState(data)
		if err != nil {
			return
		}
		b, err := MarshalHostState(v)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		w, err := ParseHostState(b)
		if err != nil {
			t.Fatalf("re-parse of our own output: %v\n%s", err, b)
		}
		if len(w.Addresses) != len(v.Addresses) || len(w.Routes) != len(v.Routes) {
			t.Fatalf("round trip lost entries")
		}
		for i := range v.Routes {
			if v.Routes[i] != w.Routes[i] {
				t.Fatalf("route %d changed: %+v -> %+v", i, v.Routes[i], w.Routes[i])
			}
		}
		NewIndex(v).Check(Network{Name: "x", Subnets: []netip.Prefix{pfx("192.168.122.0/24"), pfx("fd00::/64")}})
	})
}

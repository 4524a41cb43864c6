package dispatcher

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/vnetguard/vnetguard/conflict"
)

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestParseUpWithAddressesAndRoutes(t *testing.T) {
	ev := Parse([]string{"/x/90-vnetguard", "wlp2s0", "up"}, envOf(map[string]string{
		"NM_DISPATCHER_ACTION": "up",
		"DEVICE_IFACE":         "wlp2s0",
		"DEVICE_IP_IFACE":      "wlp2s0",
		"CONNECTION_ID":        "Hotel",
		"IP4_NUM_ADDRESSES":    "1",
		"IP4_ADDRESS_0":        "192.168.122.57/24 192.168.122.254",
		"IP4_NUM_ROUTES":       "2",
		"IP4_ROUTE_0":          "10.8.0.0/16 192.168.122.254 100",
		"IP4_ROUTE_1":          "192.168.122.0/24 0.0.0.0 100",
		"IP6_NUM_ADDRESSES":    "1",
		"IP6_ADDRESS_0":        "fd00:1::5/64 ::",
	}))
	if ev.Response != Check || ev.Interface != "wlp2s0" || ev.Connection != "Hotel" {
		t.Fatalf("event %+v", ev)
	}
	if len(ev.Dropped) != 0 {
		t.Fatalf("dropped %v", ev.Dropped)
	}
	if len(ev.Host.Addresses) != 2 || ev.Host.Addresses[0].Prefix != netip.MustParsePrefix("192.168.122.57/24") {
		t.Fatalf("addresses %+v", ev.Host.Addresses)
	}
	if len(ev.Host.Routes) != 2 || ev.Host.Routes[0].Gateway != netip.MustParseAddr("192.168.122.254") || ev.Host.Routes[1].Gateway.IsValid() {
		t.Fatalf("routes %+v", ev.Host.Routes)
	}
}

func TestParseVPNUsesVPNInterface(t *testing.T) {
	ev := Parse(nil, envOf(map[string]string{
		"NM_DISPATCHER_ACTION": "vpn-up", "DEVICE_IFACE": "eth0", "VPN_IP_IFACE": "tun0",
		"VPN_IP4_NUM_ADDRESSES": "1", "VPN_IP4_ADDRESS_0": "10.9.0.2/32 0.0.0.0",
		"VPN_IP4_NUM_ROUTES": "1", "VPN_IP4_ROUTE_0": "192.168.0.0/16 10.9.0.1 50",
	}))
	if len(ev.Host.Routes) != 1 || ev.Host.Routes[0].Interface != "tun0" {
		t.Fatalf("vpn routes %+v", ev.Host.Routes)
	}
}

func TestIgnoredActionsReadNothing(t *testing.T) {
	for _, a := range []string{"pre-down", "vpn-pre-down", "hostname", "dns-change", "device-add", "", "bogus"} {
		ev := Parse([]string{"x", "eth0", a}, envOf(map[string]string{"IP4_NUM_ADDRESSES": "1", "IP4_ADDRESS_0": "10.0.0.1/8 0.0.0.0"}))
		if ev.Response != Ignore || len(ev.Host.Addresses) != 0 {
			t.Errorf("%q: %+v", a, ev)
		}
	}
	if ev := Parse([]string{"x", "eth0", "down"}, envOf(nil)); ev.Response != Recheck {
		t.Errorf("down: %+v", ev)
	}
}

// pre-up and vpn-pre-up (the pre-up.d link) are checks NetworkManager waits
// for; the others are not.
func TestPreUpActionsCheckAndBlock(t *testing.T) {
	for action, blocking := range map[string]bool{"pre-up": true, "vpn-pre-up": true, "up": false, "vpn-up": false, "dhcp4-change": false, "down": false} {
		ev := Parse([]string{"/usr/lib/NetworkManager/dispatcher.d/pre-up.d/90-vnetguard", "eth0", action}, envOf(nil))
		if ev.Response == Ignore {
			t.Errorf("%s: ignored", action)
		}
		if ev.Blocking() != blocking {
			t.Errorf("%s: Blocking() = %v, want %v", action, ev.Blocking(), blocking)
		}
	}
	// vpn-pre-up carries the VPN's configuration (already applied).
	ev := Parse(nil, envOf(map[string]string{
		"NM_DISPATCHER_ACTION": "vpn-pre-up", "DEVICE_IFACE": "eth0", "VPN_IP_IFACE": "tun0",
		"VPN_IP4_NUM_ADDRESSES": "1", "VPN_IP4_ADDRESS_0": "10.9.0.2/24 0.0.0.0",
	}))
	if len(ev.Host.Addresses) != 1 || ev.Host.Addresses[0].Interface != "tun0" {
		t.Fatalf("vpn-pre-up addresses %+v", ev.Host.Addresses)
	}
}

// What only the environment claims is told apart from what the host shows:
// addresses by address and length on any interface, routes by destination
// in any table.
func TestUnconfirmed(t *testing.T) {
	ev := Parse([]string{"x", "eth0", "up"}, envOf(map[string]string{
		"IP4_NUM_ADDRESSES": "2", "IP4_ADDRESS_0": "10.1.0.5/24 10.1.0.1", "IP4_ADDRESS_1": "192.168.122.57/24 0.0.0.0",
		"IP4_NUM_ROUTES": "2", "IP4_ROUTE_0": "10.8.0.0/16 10.1.0.1 100", "IP4_ROUTE_1": "192.168.122.0/24 0.0.0.0 100",
	}))
	host := conflict.HostView{
		Addresses: []conflict.HostAddress{{Prefix: netip.MustParsePrefix("10.1.0.5/24"), Interface: "eth0"}},
		Routes:    []conflict.HostRoute{{Dst: netip.MustParsePrefix("10.8.0.0/16"), Interface: "eth0", Table: 100}},
	}
	u := Unconfirmed(ev.Host, host)
	if len(u.Addresses) != 1 || u.Addresses[0].Prefix != netip.MustParsePrefix("192.168.122.57/24") {
		t.Fatalf("unconfirmed addresses %+v", u.Addresses)
	}
	if len(u.Routes) != 1 || u.Routes[0].Dst != netip.MustParsePrefix("192.168.122.0/24") {
		t.Fatalf("unconfirmed routes %+v", u.Routes)
	}
	// Same address, other length: not the same address.
	host.Addresses[0].Prefix = netip.MustParsePrefix("10.1.0.5/16")
	if u := Unconfirmed(ev.Host, host); len(u.Addresses) != 2 {
		t.Fatalf("10.1.0.5/16 confirmed 10.1.0.5/24: %+v", u.Addresses)
	}
	if u := Unconfirmed(ev.Host, ev.Host); len(u.Addresses)+len(u.Routes) != 0 {
		t.Fatalf("a view does not confirm itself: %+v", u)
	}
	d := Describe(ev.Host, 3)
	if len(d) != 4 || d[3] != "and 1 more" {
		t.Fatalf("Describe: %q", d)
	}
}

func TestHostileEnvironment(t *testing.T) {
	long := strings.Repeat("a", 300)
	ev := Parse([]string{"x", "eth0;rm -rf /", "up"}, envOf(map[string]string{
		"DEVICE_IP_IFACE":   "$(reboot)",
		"DEVICE_IFACE":      long,
		"IP4_NUM_ADDRESSES": "99999999999",
		"IP4_ADDRESS_0":     "192.168.1.1/24 x",
		"IP4_ADDRESS_1":     "300.1.1.1/24",
		"IP4_ADDRESS_2":     "fd00::1/64",
		"IP4_NUM_ROUTES":    "-3",
		"IP6_NUM_ADDRESSES": "2",
		"IP6_ADDRESS_0":     "fe80::1%eth0/64",
		"IP6_NUM_ROUTES":    "1",
		"IP6_ROUTE_0":       "fd00::/8 10.0.0.1 1",
	}))
	if ev.Interface != "" {
		t.Fatalf("hostile interface accepted: %q", ev.Interface)
	}
	// Only the first address parses; the absurd count is capped.
	if len(ev.Host.Addresses) != 1 || len(ev.Host.Routes) != 0 {
		t.Fatalf("host %+v", ev.Host)
	}
	if len(ev.Dropped) < 5 {
		t.Fatalf("dropped too little: %v", ev.Dropped)
	}
	if len(ev.Dropped) > maxDropped {
		t.Fatalf("dropped list unbounded: %d", len(ev.Dropped))
	}
	for _, d := range ev.Dropped {
		if len(d) > 200 || strings.ContainsAny(d, "\n\r") {
			t.Fatalf("unsafe log line %q", d)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add("up", "eth0", "2", "192.168.1.5/24 192.168.1.1", "10.0.0.0/8 1.2.3.4 5")
	f.Add("vpn-up", "wg0", "1", "fd00::1/64 ::", "::/0 fe80::1 1")
	f.Add("down", "", "-1", "", "")
	f.Fuzz(func(t *testing.T, action, iface, n, addr, route string) {
		env := map[string]string{
			"NM_DISPATCHER_ACTION": action, "DEVICE_IFACE": iface,
			"IP4_NUM_ADDRESSES": n, "IP4_ADDRESS_0": addr, "IP4_ADDRESS_1": route,
			"IP4_NUM_ROUTES": n, "IP4_ROUTE_0": route,
			"IP6_NUM_ADDRESSES": n, "IP6_ADDRESS_0": addr, "IP6_NUM_ROUTES": n, "IP6_ROUTE_0": route,
		}
		ev := Parse([]string{"hook", iface, action}, envOf(env))
		if ev.Interface != "" && !validIface(ev.Interface) {
			t.Fatalf("invalid interface passed: %q", ev.Interface)
		}
		for _, a := range ev.Host.Addresses {
			if !a.Prefix.IsValid() {
				t.Fatalf("invalid prefix passed")
			}
		}
		if len(ev.Host.Addresses) > 4*maxEntries || len(ev.Host.Routes) > 4*maxEntries {
			t.Fatalf("unbounded")
		}
	})
}

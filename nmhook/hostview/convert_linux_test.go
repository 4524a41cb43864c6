package hostview

import (
	"net"
	"net/netip"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func ipnet(s string) *net.IPNet {
	ip, n, err := net.ParseCIDR(s)
	if err != nil {
		panic(err)
	}
	n.IP = ip
	return n
}

// Hand-made netlink records, as the kernel would send them.
func TestConvert(t *testing.T) {
	names := map[int]string{1: "lo", 2: "wlan0", 3: "wg0"}
	addrs := []netlink.Addr{
		{IPNet: ipnet("192.168.122.57/24"), LinkIndex: 2, Scope: int(netlink.SCOPE_UNIVERSE)},
		{IPNet: ipnet("fe80::1/64"), LinkIndex: 2, Scope: int(netlink.SCOPE_LINK)},
		{IPNet: nil, LinkIndex: 2}, // malformed: skipped
	}
	routes := []netlink.Route{
		{Family: unix.AF_INET, Dst: nil, Gw: net.ParseIP("192.168.122.254"), LinkIndex: 2, Table: 254, Type: unix.RTN_UNICAST, Protocol: unix.RTPROT_DHCP},
		{Family: unix.AF_INET6, Dst: nil, LinkIndex: 3, Table: 51820, Type: unix.RTN_UNICAST},
		{Family: unix.AF_INET, Dst: ipnet("10.0.0.0/8"), Table: 51820, Type: unix.RTN_UNICAST, Protocol: unix.RTPROT_STATIC,
			MultiPath: []*netlink.NexthopInfo{{LinkIndex: 3, Gw: net.ParseIP("10.9.0.1")}}},
		{Family: unix.AF_INET, Dst: ipnet("192.168.122.57/32"), LinkIndex: 2, Table: 255, Type: unix.RTN_LOCAL, Scope: netlink.SCOPE_HOST},
		{Family: unix.AF_INET, Dst: ipnet("172.16.0.0/12"), Table: 100, Type: unix.RTN_BLACKHOLE},
	}
	v := Convert(names, addrs, routes)
	if len(v.Addresses) != 2 || v.Addresses[0].Prefix != netip.MustParsePrefix("192.168.122.57/24") || v.Addresses[0].Scope != "global" || v.Addresses[1].Scope != "link" {
		t.Fatalf("addresses %+v", v.Addresses)
	}
	if len(v.Routes) != 5 {
		t.Fatalf("routes %+v", v.Routes)
	}
	r := v.Routes
	if r[0].Dst != netip.MustParsePrefix("0.0.0.0/0") || r[0].Gateway != netip.MustParseAddr("192.168.122.254") || r[0].Interface != "wlan0" || r[0].Protocol != "dhcp" {
		t.Errorf("IPv4 default route %+v", r[0])
	}
	if r[1].Dst != netip.MustParsePrefix("::/0") || r[1].Table != 51820 {
		t.Errorf("IPv6 default route %+v", r[1])
	}
	if r[2].Interface != "wg0" || r[2].Gateway != netip.MustParseAddr("10.9.0.1") || r[2].Gateway.Is4In6() {
		t.Errorf("multipath route %+v", r[2])
	}
	if r[3].Type != "local" || r[3].Scope != "host" || r[3].Table != 255 {
		t.Errorf("local route %+v", r[3])
	}
	if r[4].Type != "blackhole" || r[4].Dst != netip.MustParsePrefix("172.16.0.0/12") {
		t.Errorf("blackhole %+v", r[4])
	}
}

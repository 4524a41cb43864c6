package hostview

import (
	"net"
	"net/netip"
	"strconv"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/vnetguard/vnetguard/conflict"
)

// Convert turns netlink records into the engine's host view. It is pure so
// that tests can feed it hand-made netlink values.
func Convert(linkNames map[int]string, addrs []netlink.Addr, routes []netlink.Route) conflict.HostView {
	view := conflict.HostView{
		Addresses: make([]conflict.HostAddress, 0, len(addrs)),
		Routes:    make([]conflict.HostRoute, 0, len(routes)),
	}
	for _, a := range addrs {
		p, ok := prefixOf(a.IPNet, false)
		if !ok {
			continue
		}
		view.Addresses = append(view.Addresses, conflict.HostAddress{
			Prefix:    p,
			Interface: linkNames[a.LinkIndex],
			Scope:     addrScope(a.Scope),
		})
	}
	for _, r := range routes {
		hr, ok := convertRoute(linkNames, r)
		if ok {
			view.Routes = append(view.Routes, hr)
		}
	}
	return view
}

func convertRoute(linkNames map[int]string, r netlink.Route) (conflict.HostRoute, bool) {
	var dst netip.Prefix
	if r.Dst == nil {
		// The kernel omits RTA_DST for a default route.
		switch r.Family {
		case unix.AF_INET6:
			dst = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
		default:
			dst = netip.PrefixFrom(netip.IPv4Unspecified(), 0)
		}
	} else {
		p, ok := prefixOf(r.Dst, true)
		if !ok {
			return conflict.HostRoute{}, false
		}
		dst = p
	}
	hr := conflict.HostRoute{
		Dst:       dst,
		Interface: linkNames[r.LinkIndex],
		Table:     r.Table,
		Type:      routeType(r.Type),
		Scope:     routeScope(r.Scope),
		Gateway:   addrOf(r.Gw),
		Protocol:  routeProtocol(r.Protocol),
	}
	// A multipath route has no top-level gateway or device: report the
	// first hop, which is enough to explain a clash.
	if len(r.MultiPath) > 0 && hr.Interface == "" && !hr.Gateway.IsValid() {
		hop := r.MultiPath[0]
		hr.Interface = linkNames[hop.LinkIndex]
		hr.Gateway = addrOf(hop.Gw)
	}
	return hr, true
}

func prefixOf(n *net.IPNet, masked bool) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a := addrOf(n.IP)
	if !a.IsValid() {
		return netip.Prefix{}, false
	}
	bits, total := n.Mask.Size()
	if total != a.BitLen() {
		return netip.Prefix{}, false
	}
	p := netip.PrefixFrom(a, bits)
	if masked {
		p = p.Masked()
	}
	return p, p.IsValid()
}

// addrOf converts, folding IPv4-mapped IPv6 to IPv4: net.IP stores IPv4 in
// 16 bytes, netip must not see it as IPv6.
func addrOf(ip net.IP) netip.Addr {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return netip.Addr{}
	}
	return a.Unmap()
}

// Addresses and routes name scope 0 differently, as ip(8) does.
func addrScope(s int) string {
	if s == int(netlink.SCOPE_UNIVERSE) {
		return "global"
	}
	return routeScope(netlink.Scope(s))
}

func routeScope(s netlink.Scope) string {
	switch s {
	case netlink.SCOPE_UNIVERSE:
		return "universe"
	case netlink.SCOPE_SITE:
		return "site"
	case netlink.SCOPE_LINK:
		return "link"
	case netlink.SCOPE_HOST:
		return "host"
	case netlink.SCOPE_NOWHERE:
		return "nowhere"
	}
	return strconv.Itoa(int(s))
}

var routeTypes = map[int]string{
	unix.RTN_UNICAST:     "unicast",
	unix.RTN_LOCAL:       "local",
	unix.RTN_BROADCAST:   "broadcast",
	unix.RTN_ANYCAST:     "anycast",
	unix.RTN_MULTICAST:   "multicast",
	unix.RTN_BLACKHOLE:   "blackhole",
	unix.RTN_UNREACHABLE: "unreachable",
	unix.RTN_PROHIBIT:    "prohibit",
	unix.RTN_THROW:       "throw",
	unix.RTN_NAT:         "nat",
}

func routeType(t int) string {
	if s, ok := routeTypes[t]; ok {
		return s
	}
	return strconv.Itoa(t)
}

func routeProtocol(p netlink.RouteProtocol) string {
	return p.String()
}

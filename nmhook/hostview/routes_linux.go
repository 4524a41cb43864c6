package hostview

import (
	"encoding/binary"
	"net/netip"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/vnetguard/vnetguard/conflict"
)

// dumpRoutes streams every route of every table, both families, and keeps
// the ones keep accepts (all with a nil keep). It reads the kernel's
// messages itself rather than through netlink.RouteListFilteredIter, which
// decodes every route in full (about 0.4 µs and a dozen allocations each)
// before it can be skipped: a host with a full internet table would pay
// that for 100,000 routes on every check. Only what HostRoute holds is
// decoded, and only for routes that are kept.
func dumpRoutes(names map[int]string, keep func(netip.Prefix) bool) (routes []conflict.HostRoute, skipped int, err error) {
	req := nl.NewNetlinkRequest(unix.RTM_GETROUTE, unix.NLM_F_DUMP)
	req.AddData(nl.NewRtMsg()) // family AF_UNSPEC: both
	err = req.ExecuteIter(unix.NETLINK_ROUTE, unix.RTM_NEWROUTE, func(m []byte) bool {
		dst, ok := routeDst(m)
		if !ok {
			return true
		}
		if keep != nil && !keep(dst) {
			skipped++
			return true
		}
		routes = append(routes, decodeRoute(m, dst, names))
		return true
	})
	return routes, skipped, err
}

// routeDst reads a route message's destination; false for a message to
// skip (too short, or a cloned cache entry, as ip route hides them).
func routeDst(m []byte) (netip.Prefix, bool) {
	if len(m) < unix.SizeofRtMsg {
		return netip.Prefix{}, false
	}
	family, bits := m[0], int(m[1])
	if binary.NativeEndian.Uint32(m[8:12])&unix.RTM_F_CLONED != 0 {
		return netip.Prefix{}, false
	}
	var dst netip.Addr
	WalkAttrs(m[unix.SizeofRtMsg:], func(t uint16, v []byte) {
		if t == unix.RTA_DST {
			dst, _ = netip.AddrFromSlice(v)
		}
	})
	if !dst.IsValid() {
		// The kernel omits RTA_DST for a default route.
		switch family {
		case unix.AF_INET:
			dst = netip.IPv4Unspecified()
		case unix.AF_INET6:
			dst = netip.IPv6Unspecified()
		default:
			return netip.Prefix{}, false
		}
	}
	p, err := dst.Unmap().Prefix(bits)
	return p, err == nil
}

// decodeRoute fills a HostRoute from a route message whose destination is
// dst, as convertRoute does from a netlink.Route.
func decodeRoute(m []byte, dst netip.Prefix, names map[int]string) conflict.HostRoute {
	hr := conflict.HostRoute{
		Dst:      dst,
		Table:    int(m[4]),
		Protocol: routeProtocol(netlink.RouteProtocol(m[5])),
		Scope:    routeScope(netlink.Scope(m[6])),
		Type:     routeType(int(m[7])),
	}
	var firstHop []byte
	WalkAttrs(m[unix.SizeofRtMsg:], func(t uint16, v []byte) {
		switch t {
		case unix.RTA_TABLE:
			if len(v) >= 4 {
				hr.Table = int(binary.NativeEndian.Uint32(v))
			}
		case unix.RTA_OIF:
			if len(v) >= 4 {
				hr.Interface = names[int(binary.NativeEndian.Uint32(v))]
			}
		case unix.RTA_GATEWAY:
			if a, ok := netip.AddrFromSlice(v); ok {
				hr.Gateway = a.Unmap()
			}
		case unix.RTA_MULTIPATH:
			firstHop = v
		}
	})
	// A multipath route has no top-level gateway or device: report the
	// first hop (struct rtnexthop: len, flags, hops, ifindex, then its
	// attributes), which is enough to explain a clash.
	if firstHop != nil && hr.Interface == "" && !hr.Gateway.IsValid() && len(firstHop) >= unix.SizeofRtNexthop {
		n := int(binary.NativeEndian.Uint16(firstHop[0:2]))
		hr.Interface = names[int(int32(binary.NativeEndian.Uint32(firstHop[4:8])))]
		if n >= unix.SizeofRtNexthop && n <= len(firstHop) {
			WalkAttrs(firstHop[unix.SizeofRtNexthop:n], func(t uint16, v []byte) {
				if t == unix.RTA_GATEWAY {
					if a, ok := netip.AddrFromSlice(v); ok {
						hr.Gateway = a.Unmap()
					}
				}
			})
		}
	}
	return hr
}

// WalkAttrs walks netlink attributes (struct rtattr, 4-byte aligned)
// without allocating, stopping at the first malformed one.
func WalkAttrs(b []byte, f func(t uint16, v []byte)) {
	for len(b) >= unix.SizeofRtAttr {
		l := int(binary.NativeEndian.Uint16(b[0:2]))
		if l < unix.SizeofRtAttr || l > len(b) {
			return
		}
		f(binary.NativeEndian.Uint16(b[2:4])&^unix.NLA_F_NESTED, b[unix.SizeofRtAttr:l])
		l = (l + unix.RTA_ALIGNTO - 1) &^ (unix.RTA_ALIGNTO - 1)
		if l > len(b) {
			return
		}
		b = b[l:]
	}
}

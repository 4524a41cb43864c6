package conflict

import "net/netip"

// The skip rules: which host entries can never make a virtual network
// unusable. NewIndex applies them once; Check then skips only what is the
// network's own (its bridge and ports).

// ignorable: the default route, the full-tunnel halves a VPN installs to
// override the default route without replacing it (0.0.0.0/1 and
// 128.0.0.0/1, ::/1 and 8000::/1: OpenVPN's def1, wg-quick and others; as
// each family has only these two /1s, any /1 is a half), link-local, loopback,
// multicast and unspecified prefixes never make a virtual network unusable
// (they cover everything, or nothing a bridge can use). A prefix is judged
// by its first address: 169.254.0.0/16 and fe80::/10 are link-local, a
// wider prefix around them is not. p must be masked.
func ignorable(p netip.Prefix) bool {
	if !p.IsValid() || p.Bits() <= 1 {
		return true
	}
	a := p.Addr()
	return a.IsLoopback() || a.IsMulticast() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() || a.IsUnspecified()
}

// routeTypeCounts: multicast, throw and nat routes carry no unicast traffic
// to a range (throw only ends the lookup in one table). Unicast (also when
// empty), blackhole, unreachable and prohibit count: a VPN's kill switch
// over a range makes it unusable. Local, broadcast and anycast routes
// count unless they mirror a host address (see mirrorsAddress).
func routeTypeCounts(t string) bool {
	switch t {
	case "multicast", "throw", "nat":
		return false
	}
	return true
}

// mirrorType: the kernel derives routes of these types (mostly in the
// local table, 255) from every address: "local 192.168.1.5", "broadcast
// 192.168.1.255", IPv6 "anycast fd00:1::". Such a route says nothing the
// address does not, and the address is indexed itself, on whichever
// interface. One that mirrors no address, such as an AnyIP "local
// 10.0.0.0/8 dev lo", makes the host answer for the whole range and counts.
func mirrorType(t string) bool {
	return t == "local" || t == "broadcast" || t == "anycast"
}

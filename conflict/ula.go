package conflict

import "net/netip"

// ULAGlobalID is an RFC 4193 40-bit global ID: random, made once per host
// by the caller (see package store), so that the host's ULA /48 is unlikely
// to collide with any other site's.
type ULAGlobalID [5]byte

// Prefix48 is fdXX:XXXX:XXXX::/48.
func (g ULAGlobalID) Prefix48() netip.Prefix {
	var a [16]byte
	a[0] = 0xfd
	copy(a[1:6], g[:])
	return netip.PrefixFrom(netip.AddrFrom16(a), 48)
}

// Subnet is the /64 with the given 16-bit subnet ID.
func (g ULAGlobalID) Subnet(id uint16) netip.Prefix {
	a := g.Prefix48().Addr().As16()
	a[6], a[7] = byte(id>>8), byte(id)
	return netip.PrefixFrom(netip.AddrFrom16(a), 64)
}

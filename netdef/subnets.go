package netdef

import (
	"fmt"
	"net/netip"
	"strconv"
)

// Subnets returns the masked subnet of every <ip> that parses, in order.
func (n *Network) Subnets() []netip.Prefix {
	var out []netip.Prefix
	for _, ip := range n.IPs {
		if p, err := ip.Subnet(); err == nil {
			out = append(out, p.Masked())
		}
	}
	return out
}

// BridgeName is the name of the network's bridge, "" when it names none.
func (n *Network) BridgeName() string {
	if n.Bridge == nil {
		return ""
	}
	return n.Bridge.Name
}

// ForwardMode is the effective forward mode: "" (isolated) without a
// <forward>, "nat" for a <forward> without mode (libvirt's default), else
// the mode as written.
func (n *Network) ForwardMode() string {
	switch {
	case n.Forward == nil:
		return ""
	case n.Forward.Mode == "":
		return "nat"
	}
	return n.Forward.Mode
}

// Subnet is the <ip>'s address with its prefix length (not masked), as
// libvirt computes it: a prefix above 0 wins, else the netmask, else the
// default — the classful length for IPv4 (0 for 0.0.0.0), 64 for IPv6 (0
// for ::). libvirt reads prefix='0' as "not given".
func (ip IP) Subnet() (netip.Prefix, error) {
	a, err := parseAddr(ip.Address)
	if err != nil {
		return netip.Prefix{}, err
	}
	bits, err := ipBits(a, ip.Prefix, ip.Netmask)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, bits), nil
}

// Subnet is the route's destination. Unlike <ip>, a route without prefix
// or netmask has length 0: libvirt then insists the address is 0.0.0.0 or
// :: (a default route).
func (r Route) Subnet() (netip.Prefix, error) {
	a, err := parseAddr(r.Address)
	if err != nil {
		return netip.Prefix{}, err
	}
	bits := 0
	switch {
	case r.Prefix != "":
		bits, err = prefixAttr(r.Prefix, a.BitLen())
	case r.Netmask != "":
		bits, err = netmaskBits(r.Netmask)
	}
	if err != nil {
		return netip.Prefix{}, err
	}
	if bits > a.BitLen() {
		return netip.Prefix{}, fmt.Errorf("prefix %d is longer than an %s address", bits, familyOf(a))
	}
	return netip.PrefixFrom(a, bits), nil
}

func parseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" || a.Is4In6() {
		return netip.Addr{}, fmt.Errorf("address %q is not an IP address", s)
	}
	return a, nil
}

func ipBits(a netip.Addr, prefix, netmask string) (int, error) {
	if prefix != "" {
		b, err := prefixAttr(prefix, a.BitLen())
		if err != nil || b > 0 {
			return b, err
		}
	}
	if netmask != "" {
		if a.Is6() {
			return 0, fmt.Errorf("an IPv6 address takes a prefix, not a netmask")
		}
		return netmaskBits(netmask)
	}
	if a.IsUnspecified() {
		return 0, nil
	}
	if a.Is6() {
		return 64, nil
	}
	return classfulBits(a)
}

// prefixAttr parses a prefix attribute: a decimal number up to max.
func prefixAttr(s string, max int) (int, error) {
	b, err := strconv.ParseUint(s, 10, 32)
	if err != nil || b > uint64(max) {
		return 0, fmt.Errorf("prefix %q must be a number from 0 to %d", s, max)
	}
	return int(b), nil
}

// classfulBits is the pre-CIDR default libvirt applies to an IPv4 <ip>
// without netmask or prefix; class D and E have none.
func classfulBits(a netip.Addr) (int, error) {
	first := a.As4()[0]
	switch {
	case first < 128:
		return 8, nil
	case first < 192:
		return 16, nil
	case first < 224:
		return 24, nil
	}
	return 0, fmt.Errorf("address %s has no default prefix (class D or E): give a prefix", a)
}

// netmaskBits converts a dotted IPv4 netmask; the ones must be contiguous.
func netmaskBits(s string) (int, error) {
	m, err := netip.ParseAddr(s)
	if err != nil || !m.Is4() {
		return 0, fmt.Errorf("netmask %q is not an IPv4 netmask", s)
	}
	b := m.As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	ones := 0
	for v&(1<<31) != 0 {
		ones++
		v <<= 1
	}
	if v != 0 {
		return 0, fmt.Errorf("netmask %q is not contiguous", s)
	}
	return ones, nil
}

// netmaskString is the dotted form of an IPv4 prefix length.
func netmaskString(bits int) string {
	v := ^uint32(0) << (32 - bits)
	if bits == 0 {
		v = 0
	}
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}).String()
}

func familyOf(a netip.Addr) string {
	if a.Is4() {
		return "ipv4"
	}
	return "ipv6"
}

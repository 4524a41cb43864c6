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

// Subnet is the <ip>'s address with its prefix length (not masked). The
// length comes from prefix, else netmask, else libvirt's default: the
// classful length for IPv4, 64 for IPv6.
func (ip IP) Subnet() (netip.Prefix, error) {
	a, err := netip.ParseAddr(ip.Address)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("address %q is not an IP address", ip.Address)
	}
	if a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("address %q has a zone", ip.Address)
	}
	bits, err := ip.bits(a)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, bits), nil
}

func (ip IP) bits(a netip.Addr) (int, error) {
	switch {
	case ip.Prefix != "":
		b, err := strconv.Atoi(ip.Prefix)
		if err != nil || b < 0 || b > a.BitLen() {
			return 0, fmt.Errorf("prefix %q must be a number from 0 to %d", ip.Prefix, a.BitLen())
		}
		return b, nil
	case ip.Netmask != "":
		return netmaskBits(ip.Netmask)
	case a.Is6():
		return 64, nil
	}
	return classfulBits(a), nil
}

// classfulBits is the pre-CIDR default libvirt applies to an IPv4 <ip>
// without netmask or prefix.
func classfulBits(a netip.Addr) int {
	first := a.As4()[0]
	switch {
	case first < 128:
		return 8
	case first < 192:
		return 16
	}
	return 24
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

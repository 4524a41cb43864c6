package netdef

import (
	"fmt"
	"net/netip"
	"strings"
)

func (v *validator) ips() {
	dhcp4, dhcp6 := false, false
	for i, ip := range v.n.IPs {
		path := fmt.Sprintf("network/ip[%d]", i)
		p, ok := v.ip(path, ip)
		if !ok {
			continue
		}
		v.nets = append(v.nets, p.Masked())
		if ip.TFTP != nil && p.Addr().Is6() {
			v.add(path+"/tftp[0]", "<tftp> is only supported on IPv4")
		}
		if ip.DHCP == nil {
			continue
		}
		// libvirt counts an <ip> as serving DHCP when it has ranges or
		// hosts; a bare <dhcp/> does not count.
		if len(ip.DHCP.Ranges)+len(ip.DHCP.Hosts) > 0 {
			seen := &dhcp6
			if p.Addr().Is4() {
				seen = &dhcp4
			}
			if *seen {
				v.add(path+"/dhcp[0]", "only one %s <ip> may have <dhcp> ranges or hosts", map[bool]string{true: "IPv4", false: "IPv6"}[p.Addr().Is4()])
			}
			*seen = true
		}
		v.dhcp(path+"/dhcp[0]", p, ip.DHCP)
	}
}

// ip checks one <ip> and returns its address with length.
func (v *validator) ip(path string, ip IP) (netip.Prefix, bool) {
	if ip.Address == "" {
		v.add(path, "an <ip> needs an address")
		return netip.Prefix{}, false
	}
	a, err := parseAddr(ip.Address)
	if err != nil {
		v.add(path, "%v", err)
		return netip.Prefix{}, false
	}
	v.yesNo(path, "localPtr", ip.LocalPtr)
	switch ip.Family {
	case "", "ipv4", "ipv6":
	default:
		v.add(path, "family %q must be ipv4 or ipv6", ip.Family)
		return netip.Prefix{}, false
	}
	// libvirt reads a missing family as ipv4.
	if (ip.Family == "ipv6") != a.Is6() {
		v.add(path, "address %s does not belong to family %q", a, familyName(ip.Family))
		return netip.Prefix{}, false
	}
	if a.Is6() && ip.Netmask != "" {
		v.add(path, "an IPv6 address takes a prefix, not a netmask")
		return netip.Prefix{}, false
	}
	if ip.Netmask != "" && ip.Prefix != "" && ip.Prefix != "0" {
		v.add(path, "netmask and prefix must not be given together")
		return netip.Prefix{}, false
	}
	p, err := ip.Subnet()
	if err != nil {
		v.add(path, "%v", err)
		return netip.Prefix{}, false
	}
	return p, true
}

func familyName(f string) string {
	if f == "" {
		return "ipv4"
	}
	return f
}

func (v *validator) dhcp(path string, subnet netip.Prefix, d *DHCP) {
	net := subnet.Masked()
	for i, r := range d.Ranges {
		rp := fmt.Sprintf("%s/range[%d]", path, i)
		s, err1 := parseAddr(r.Start)
		e, err2 := parseAddr(r.End)
		if err1 != nil || err2 != nil {
			v.add(rp, "a range needs start and end addresses")
			continue
		}
		if msg := rangeIn(s, e, net); msg != "" {
			v.add(rp, "%s", msg)
		} else if msg := rangeShape(s, e); msg != "" {
			v.add(rp, "range %s", msg)
		}
		if r.Lease != nil {
			v.lease(rp+"/lease[0]", r.Lease)
		}
	}
	for i, h := range d.Hosts {
		v.dhcpHost(fmt.Sprintf("%s/host[%d]", path, i), net, h)
	}
	// libvirt ignores <bootp> in an IPv6 <ip>.
	if b := d.Bootp; b != nil && subnet.Addr().Is4() {
		bp := path + "/bootp[0]"
		if b.File == "" {
			v.add(bp, "bootp needs a file")
		}
		if b.Server != "" {
			if _, err := parseAddr(b.Server); err != nil {
				v.add(bp, "bootp server %q is not an IP address", b.Server)
			}
		}
	}
}

// rangeIn reports why a DHCP range does not fit its subnet, or "".
func rangeIn(s, e netip.Addr, net netip.Prefix) string {
	for _, a := range []netip.Addr{s, e} {
		switch {
		case !net.Contains(a):
			return fmt.Sprintf("%s lies outside the network's subnet %s", a, net)
		case a.Is4() && a == net.Addr():
			return fmt.Sprintf("%s is the network address of %s", a, net)
		case a.Is4() && a == LastAddr(net):
			return fmt.Sprintf("%s is the broadcast address of %s", a, net)
		}
	}
	return ""
}

// rangeShape applies libvirt's size rule for address ranges: start <= end,
// and only the last 16 bits may differ (IPv4: the first two bytes equal;
// IPv6: the first seven groups), so at most 65536 addresses.
func rangeShape(s, e netip.Addr) string {
	if s.Is4() != e.Is4() {
		return fmt.Sprintf("%s-%s mixes address families", s, e)
	}
	sb, eb := s.AsSlice(), e.AsSlice()
	fixed := len(sb) - 2
	if string(sb[:fixed]) != string(eb[:fixed]) {
		if e.Less(s) {
			return fmt.Sprintf("start %s is after end %s", s, e)
		}
		return fmt.Sprintf("%s-%s is too large: libvirt allows 65535 addresses at most (only the last 16 bits may differ)", s, e)
	}
	if e.Less(s) {
		return fmt.Sprintf("start %s is after end %s", s, e)
	}
	return ""
}

func (v *validator) dhcpHost(hp string, net netip.Prefix, h DHCPHost) {
	if net.Addr().Is4() {
		if h.MAC == "" && h.Name == "" {
			v.add(hp, "a static host in an IPv4 network needs a mac or a name")
		}
	} else {
		if h.MAC != "" {
			v.add(hp, "a static host in an IPv6 network is matched by id or name, not mac")
		}
		if h.ID == "" && h.Name == "" {
			v.add(hp, "a static host in an IPv6 network needs an id or a name")
		}
	}
	if h.MAC != "" && net.Addr().Is4() && !unicastMAC(h.MAC) {
		v.add(hp, "mac %q must be a unicast MAC address", h.MAC)
	}
	if h.ID != "" && strings.Trim(h.ID, "0123456789abcdefABCDEF:") != "" {
		v.add(hp, "id %q may hold only hex digits and ':'", h.ID)
	}
	if h.Name != "" && !isAlnum(h.Name[0]) {
		v.add(hp, "host name %q must start with a letter or digit", h.Name)
	}
	if h.IP == "" {
		v.add(hp, "a static host needs an ip")
	} else if a, err := parseAddr(h.IP); err != nil {
		v.add(hp, "ip %q is not an IP address", h.IP)
	} else if msg := hostIn(a, net); msg != "" {
		v.add(hp, "ip %s", msg)
	}
	if h.Lease != nil {
		v.lease(hp+"/lease[0]", h.Lease)
	}
}

// hostIn reports why a is no host address of net, or "".
func hostIn(a netip.Addr, net netip.Prefix) string {
	switch {
	case !net.Contains(a):
		return fmt.Sprintf("%s lies outside the network's subnet %s", a, net)
	case a.Is4() && net.Bits() < 31 && (a == net.Addr() || a == LastAddr(net)):
		return fmt.Sprintf("%s is the network or broadcast address of %s", a, net)
	}
	return ""
}

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// lease follows libvirt: expiry 0 is infinite, anything else must be at
// least two minutes (dnsmasq's minimum); unit defaults to minutes.
func (v *validator) lease(path string, l *Lease) {
	exp, ok := v.unsigned(path, "expiry", l.Expiry, 64)
	if l.Expiry == "" {
		v.add(path, "a lease needs an expiry")
	}
	switch l.Unit {
	case "", "seconds", "minutes", "hours":
	default:
		v.add(path, "lease unit %q must be seconds, minutes or hours", l.Unit)
		return
	}
	if ok && exp > 0 && ((l.Unit == "seconds" && exp < 120) || ((l.Unit == "" || l.Unit == "minutes") && exp < 2)) {
		v.add(path, "a lease shorter than 2 minutes is not allowed (0 means infinite)")
	}
}

func (v *validator) routes() {
	for i, r := range v.n.Routes {
		v.route(fmt.Sprintf("network/route[%d]", i), r)
	}
}

func (v *validator) route(path string, r Route) {
	if r.Address == "" || r.Gateway == "" {
		v.add(path, "a route needs an address and a gateway")
		return
	}
	a, err := parseAddr(r.Address)
	if err != nil {
		v.add(path, "route address %q is not an IP address", r.Address)
		return
	}
	gw, err := parseAddr(r.Gateway)
	if err != nil {
		v.add(path, "route gateway %q is not an IP address", r.Gateway)
		return
	}
	switch r.Family {
	case "", "ipv4", "ipv6":
	default:
		v.add(path, "family %q must be ipv4 or ipv6", r.Family)
		return
	}
	if (r.Family == "ipv6") != a.Is6() {
		v.add(path, "route address %s does not belong to family %q", a, familyName(r.Family))
		return
	}
	if gw.Is6() != a.Is6() {
		v.add(path, "route gateway %s is not of the route's family", gw)
		return
	}
	if a.Is6() && r.Netmask != "" {
		v.add(path, "an IPv6 route takes a prefix, not a netmask")
		return
	}
	if r.Netmask != "" && r.Prefix != "" {
		v.add(path, "netmask and prefix must not be given together")
		return
	}
	if m, ok := v.unsigned(path, "metric", r.Metric, 32); ok && m == 0 {
		v.add(path, "route metric must be positive")
	}
	p, err := r.Subnet()
	if err != nil {
		v.add(path, "%v", err)
		return
	}
	if p.Masked().Addr() != a {
		v.add(path, "route address %s is not the network address of /%d (it would be %s)", a, p.Bits(), p.Masked().Addr())
	}
	for _, n := range v.nets {
		if n.Contains(gw) {
			return
		}
	}
	v.add(path, "route gateway %s lies in none of the network's subnets", gw)
}

// LastAddr is the highest address of p (the IPv4 broadcast address).
func LastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	host := len(b)*8 - p.Bits()
	for i := len(b) - 1; i >= 0 && host > 0; i-- {
		n := min(host, 8)
		b[i] |= byte(1<<n - 1)
		host -= n
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

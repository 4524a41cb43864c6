package netdef

import (
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
)

// Problem is one broken rule.
type Problem struct {
	File    string
	Element string // the element's path, e.g. network/ip[0]/dhcp[0]/range[1]
	Line    int
	Rule    string
}

// Error reads "FILE: <element> (line N): rule".
func (p Problem) Error() string {
	var b strings.Builder
	if p.File != "" {
		b.WriteString(p.File + ": ")
	}
	if p.Element != "" {
		b.WriteString("<" + tagOf(p.Element) + ">")
		if p.Line > 0 {
			fmt.Fprintf(&b, " (line %d)", p.Line)
		}
		b.WriteString(": ")
	}
	b.WriteString(p.Rule)
	return b.String()
}

// tagOf turns network/ip[0]/dhcp[0]/range[1] into "range" and keeps an
// index where it tells elements apart: ip#2 > range#2 is clearer, but the
// line number does that job; keep the message short.
func tagOf(path string) string {
	last := path[strings.LastIndexByte(path, '/')+1:]
	if i := strings.IndexByte(last, '['); i >= 0 {
		last = last[:i]
	}
	if i := strings.IndexByte(last, ' '); i >= 0 { // namespaced: "uri local"
		last = last[i+1:]
	}
	return last
}

// maxRangeSize is libvirt's limit on the addresses of one DHCP range.
const maxRangeSize = 65535

var forwardModes = map[string]bool{"": true, "nat": true, "route": true, "open": true, "bridge": true,
	"private": true, "vepa": true, "passthrough": true, "hostdev": true}

// modes that attach guests straight to a host device: no addressing of
// their own.
var directModes = map[string]bool{"bridge": true, "private": true, "vepa": true, "passthrough": true, "hostdev": true}

var uuidRe = regexp.MustCompile(`^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$`)

type validator struct {
	d    *Definition
	out  []Problem
	nets []netip.Prefix // the subnets of the valid <ip>s
}

func (v *validator) add(path, format string, args ...any) {
	v.out = append(v.out, Problem{File: v.d.Path, Element: path, Line: v.d.line(path), Rule: fmt.Sprintf(format, args...)})
}

// Validate checks the definition against libvirt's rules and vnetguard's
// policy; it returns nil when all hold.
func (d *Definition) Validate() []Problem {
	v := &validator{d: d}
	n := &d.Network
	root := "network"
	switch {
	case strings.TrimSpace(n.Name) == "":
		v.add(root, "a network needs a <name>")
	case strings.ContainsRune(n.Name, '/'):
		v.add("network/name[0]", "name %q must not contain '/'", n.Name)
	}
	if n.UUID != "" && !uuidRe.MatchString(n.UUID) {
		v.add("network/uuid[0]", "uuid %q is not a UUID", n.UUID)
	}
	for _, yn := range []struct{ attr, val string }{{"ipv6", n.IPv6}, {"trustGuestRxFilters", n.TrustGuestRxFilters}, {"autoaddr", n.AutoAddr}} {
		if yn.val != "" && yn.val != "yes" && yn.val != "no" {
			v.add(root, "%s=%q must be yes or no", yn.attr, yn.val)
		}
	}
	v.policy()
	mode := ""
	if n.Forward != nil {
		mode = n.Forward.Mode
	}
	v.forward(mode)
	v.ips(mode)
	v.routes()
	v.dns(mode)
	if n.MAC != nil {
		if hw, err := net.ParseMAC(n.MAC.Address); err != nil || len(hw) != 6 || hw[0]&1 == 1 {
			v.add("network/mac[0]", "mac %q must be a unicast MAC address", n.MAC.Address)
		}
		if directModes[mode] {
			v.add("network/mac[0]", "a <mac> is not allowed with forward mode %q", mode)
		}
	}
	if n.MTU != nil {
		if s, err := strconv.ParseUint(n.MTU.Size, 10, 32); err != nil || s == 0 {
			v.add("network/mtu[0]", "mtu size %q must be a positive number", n.MTU.Size)
		}
	}
	if n.Domain != nil && directModes[mode] {
		v.add("network/domain[0]", "a <domain> is not allowed with forward mode %q", mode)
	}
	defaults := 0
	for i, pg := range n.PortGroups {
		path := fmt.Sprintf("network/portgroup[%d]", i)
		if pg.Name == "" {
			v.add(path, "a portgroup needs a name")
		}
		if pg.Default == "yes" {
			defaults++
			if defaults == 2 {
				v.add(path, "only one portgroup may be the default")
			}
		}
	}
	return v.out
}

func (v *validator) policy() {
	p := v.d.policy
	if p == nil {
		return
	}
	path := "network/metadata[0]/" + PolicyNamespace + " policy[0]"
	if !OnConflict(p.onConflict).Valid() {
		v.add(path, "on-conflict=%q must be renumber, destroy or warn", p.onConflict)
	}
	if p.count > 1 {
		v.add(path, "only one vnetguard:policy element is allowed")
	}
}

func (v *validator) forward(mode string) {
	n := &v.d.Network
	if !forwardModes[mode] {
		v.add("network/forward[0]", "unknown forward mode %q", mode)
		return
	}
	if n.Forward == nil {
		return
	}
	if n.Forward.NAT != nil && mode != "nat" {
		v.add("network/forward[0]/nat[0]", "<nat> is only allowed with forward mode nat")
	}
	if mode == "open" && n.Forward.Dev != "" {
		v.add("network/forward[0]", "forward mode open takes no dev")
	}
	if nat := n.Forward.NAT; nat != nil {
		for i, r := range nat.Addresses {
			path := fmt.Sprintf("network/forward[0]/nat[0]/address[%d]", i)
			s, err1 := netip.ParseAddr(r.Start)
			e, err2 := netip.ParseAddr(r.End)
			if err1 != nil || err2 != nil || !s.Is4() || !e.Is4() {
				v.add(path, "nat address range needs IPv4 start and end")
			} else if e.Less(s) {
				v.add(path, "nat address range start %s is after end %s", s, e)
			}
		}
		for i, r := range nat.Ports {
			path := fmt.Sprintf("network/forward[0]/nat[0]/port[%d]", i)
			s, err1 := strconv.ParseUint(r.Start, 10, 16)
			e, err2 := strconv.ParseUint(r.End, 10, 16)
			if err1 != nil || err2 != nil || s == 0 || s > e {
				v.add(path, "nat port range needs start <= end, both 1-65535")
			}
		}
	}
}

func (v *validator) ips(mode string) {
	n := &v.d.Network
	if directModes[mode] && len(n.IPs) > 0 {
		v.add("network/ip[0]", "<ip> is not allowed with forward mode %q: guests use the host's network directly", mode)
	}
	if (mode == "nat" || mode == "route" || mode == "open") && len(n.IPs) == 0 {
		v.add("network", "forward mode %s needs an <ip>", mode)
	}
	dhcp4, dhcp6 := 0, 0
	for i, ip := range n.IPs {
		path := fmt.Sprintf("network/ip[%d]", i)
		p, ok := v.ip(path, ip)
		if !ok {
			continue
		}
		v.nets = append(v.nets, p.Masked())
		if ip.DHCP == nil {
			continue
		}
		if p.Addr().Is4() {
			dhcp4++
			if dhcp4 == 2 {
				v.add(path+"/dhcp[0]", "only one IPv4 <ip> may have <dhcp>")
			}
		} else {
			dhcp6++
			if dhcp6 == 2 {
				v.add(path+"/dhcp[0]", "only one IPv6 <ip> may have <dhcp>")
			}
		}
		v.dhcp(path+"/dhcp[0]", p, ip.DHCP)
	}
}

// ip checks one <ip> and returns its address with length.
func (v *validator) ip(path string, ip IP) (netip.Prefix, bool) {
	a, err := netip.ParseAddr(ip.Address)
	if err != nil || a.Zone() != "" {
		v.add(path, "address %q is not an IP address", ip.Address)
		return netip.Prefix{}, false
	}
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
	if ip.Netmask != "" && ip.Prefix != "" {
		v.add(path, "netmask and prefix must not be given together")
		return netip.Prefix{}, false
	}
	if a.Is6() && ip.Netmask != "" {
		v.add(path, "an IPv6 address takes a prefix, not a netmask")
		return netip.Prefix{}, false
	}
	p, err := ip.Subnet()
	if err != nil {
		v.add(path, "%v", err)
		return netip.Prefix{}, false
	}
	if a.Is4() && p.Bits() > 30 && (ip.DHCP != nil) {
		v.add(path, "a /%d leaves no addresses for DHCP", p.Bits())
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
		s, err1 := netip.ParseAddr(r.Start)
		e, err2 := netip.ParseAddr(r.End)
		if err1 != nil || err2 != nil {
			v.add(rp, "range needs start and end addresses")
			continue
		}
		ok := true
		for _, a := range []netip.Addr{s, e} {
			if !net.Contains(a) {
				v.add(rp, "%s lies outside the network's subnet %s", a, net)
				ok = false
			} else if a == net.Addr() {
				v.add(rp, "%s is the network address of %s", a, net)
				ok = false
			} else if a.Is4() && a == lastAddr(net) {
				v.add(rp, "%s is the broadcast address of %s", a, net)
				ok = false
			}
		}
		if !ok {
			continue
		}
		if e.Less(s) {
			v.add(rp, "range start %s is after end %s", s, e)
			continue
		}
		if size := rangeSize(s, e); size.Cmp(big.NewInt(maxRangeSize)) > 0 {
			v.add(rp, "range %s-%s holds %s addresses; libvirt allows at most %d", s, e, size, maxRangeSize)
		}
		if r.Lease != nil {
			v.lease(rp+"/lease[0]", r.Lease)
		}
	}
	for i, h := range d.Hosts {
		hp := fmt.Sprintf("%s/host[%d]", path, i)
		if subnet.Addr().Is4() {
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
		if h.MAC != "" {
			if hw, err := parseMAC(h.MAC); err != nil || hw[0]&1 == 1 {
				v.add(hp, "mac %q must be a unicast MAC address", h.MAC)
			}
		}
		if h.IP != "" {
			a, err := netip.ParseAddr(h.IP)
			switch {
			case err != nil:
				v.add(hp, "ip %q is not an IP address", h.IP)
			case !net.Contains(a):
				v.add(hp, "ip %s lies outside the network's subnet %s", a, net)
			case a == net.Addr() || (a.Is4() && a == lastAddr(net)):
				v.add(hp, "ip %s is the network or broadcast address", a)
			}
		}
		if h.Lease != nil {
			v.lease(hp+"/lease[0]", h.Lease)
		}
	}
	if d.Bootp != nil {
		bp := path + "/bootp[0]"
		if d.Bootp.File == "" {
			v.add(bp, "bootp needs a file")
		}
		if d.Bootp.Server != "" {
			if _, err := netip.ParseAddr(d.Bootp.Server); err != nil && !validHostname(d.Bootp.Server) {
				v.add(bp, "bootp server %q is neither an address nor a host name", d.Bootp.Server)
			}
		}
		if !subnet.Addr().Is4() {
			v.add(bp, "bootp is only supported on IPv4")
		}
	}
}

func (v *validator) lease(path string, l *Lease) {
	if l.Expiry == "" {
		v.add(path, "lease needs an expiry")
		return
	}
	if _, err := strconv.ParseUint(l.Expiry, 10, 32); err != nil {
		v.add(path, "lease expiry %q must be a number", l.Expiry)
	}
	switch l.Unit {
	case "", "seconds", "minutes", "hours":
	default:
		v.add(path, "lease unit %q must be seconds, minutes or hours", l.Unit)
	}
}

func (v *validator) routes() {
	for i, r := range v.d.Network.Routes {
		path := fmt.Sprintf("network/route[%d]", i)
		a, err := netip.ParseAddr(r.Address)
		if err != nil {
			v.add(path, "route address %q is not an IP address", r.Address)
			continue
		}
		if r.Family != "" && (r.Family == "ipv6") != a.Is6() {
			v.add(path, "route address %s does not belong to family %q", a, r.Family)
		}
		if r.Netmask != "" && r.Prefix != "" {
			v.add(path, "netmask and prefix must not be given together")
		}
		if a.Is6() && r.Netmask != "" {
			v.add(path, "an IPv6 route takes a prefix, not a netmask")
		}
		if _, err := (IP{Address: r.Address, Prefix: r.Prefix, Netmask: r.Netmask}).Subnet(); err != nil {
			v.add(path, "%v", err)
		}
		gw, err := netip.ParseAddr(r.Gateway)
		if err != nil {
			v.add(path, "route gateway %q is not an IP address", r.Gateway)
			continue
		}
		if gw.Is4() != a.Is4() {
			v.add(path, "route gateway %s is not of the route's family", gw)
			continue
		}
		inside := false
		for _, n := range v.nets {
			if n.Contains(gw) {
				inside = true
			}
		}
		if !inside {
			v.add(path, "route gateway %s lies in none of the network's subnets", gw)
		}
		if r.Metric != "" {
			if m, err := strconv.ParseUint(r.Metric, 10, 32); err != nil || m == 0 {
				v.add(path, "route metric %q must be a positive number", r.Metric)
			}
		}
	}
}

func (v *validator) dns(mode string) {
	d := v.d.Network.DNS
	if d == nil {
		return
	}
	if directModes[mode] {
		v.add("network/dns[0]", "<dns> is not allowed with forward mode %q", mode)
	}
	for i, f := range d.Forwarders {
		if f.Addr != "" {
			if _, err := netip.ParseAddr(f.Addr); err != nil {
				v.add(fmt.Sprintf("network/dns[0]/forwarder[%d]", i), "forwarder addr %q is not an IP address", f.Addr)
			}
		} else if f.Domain == "" {
			v.add(fmt.Sprintf("network/dns[0]/forwarder[%d]", i), "a forwarder needs addr or domain")
		}
	}
	for i, h := range d.Hosts {
		path := fmt.Sprintf("network/dns[0]/host[%d]", i)
		if _, err := netip.ParseAddr(h.IP); err != nil {
			v.add(path, "dns host ip %q is not an IP address", h.IP)
		}
		if len(h.Hostnames) == 0 {
			v.add(path, "a dns host needs at least one <hostname>")
		}
	}
	for i, t := range d.TXTs {
		if t.Name == "" || strings.ContainsAny(t.Name, " \t") {
			v.add(fmt.Sprintf("network/dns[0]/txt[%d]", i), "a txt record needs a name without spaces")
		}
	}
	for i, s := range d.SRVs {
		path := fmt.Sprintf("network/dns[0]/srv[%d]", i)
		if s.Service == "" || s.Protocol == "" {
			v.add(path, "an srv record needs service and protocol")
		}
		if s.Protocol != "" && s.Protocol != "tcp" && s.Protocol != "udp" {
			v.add(path, "srv protocol %q must be tcp or udp", s.Protocol)
		}
	}
}

var hostnameRe = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$`)

func validHostname(s string) bool { return hostnameRe.MatchString(s) }

func parseMAC(s string) (net.HardwareAddr, error) {
	hw, err := net.ParseMAC(s)
	if err == nil && len(hw) != 6 {
		return nil, fmt.Errorf("not a 48-bit MAC")
	}
	return hw, err
}

// lastAddr is the highest address of p (the IPv4 broadcast address).
func lastAddr(p netip.Prefix) netip.Addr {
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

// rangeSize counts the addresses from s to e inclusive.
func rangeSize(s, e netip.Addr) *big.Int {
	sb, eb := new(big.Int).SetBytes(s.AsSlice()), new(big.Int).SetBytes(e.AsSlice())
	return new(big.Int).Add(new(big.Int).Sub(eb, sb), big.NewInt(1))
}

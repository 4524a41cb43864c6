package profiles

import (
	"crypto/sha1"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/godbus/dbus/v5"

	"github.com/vnetguard/vnetguard/netdef"
	"github.com/vnetguard/vnetguard/nmhook/nm"
)

// UserDataKey marks a NetworkManager profile as vnetguard's: its value is
// the network's name. A profile without it is never touched.
const UserDataKey = "org.vnetguard.network"

// Profile is the NetworkManager bridge profile a definition becomes, as
// plain values: what FromDefinition decides, before any D-Bus encoding.
type Profile struct {
	Network     string // the vnetguard network's name (the user-data value)
	ID          string // the profile's name: "vnetguard-" + Network
	UUID        string
	Iface       string // the bridge
	Autoconnect bool
	STP         bool
	// ForwardDelay in seconds; -1 leaves NetworkManager's default.
	ForwardDelay int
	MTU          uint32 // 0: default
	MAC          string // "": the kernel's choice
	IPv4Method   string // shared, manual or disabled
	IPv4         []netip.Prefix
	IPv6Method   string // shared, manual or disabled
	IPv6         []netip.Prefix
	// DHCP says who serves DHCP: "shared" (NetworkManager's dnsmasq, for
	// one IPv4 range), "dnsmasq" (vnetguard's own, for what shared mode
	// cannot do: see ownDHCPReason), "upstream" (bridged) or "none".
	DHCP string
	// Notes say where the profile gives less than the definition asks.
	Notes []string
	// RA says who sends router advertisements: "networkmanager" (shared
	// mode), "radvd" (vnetguard's, for <radvd/>), "dnsmasq" (vnetguard's,
	// with the managed flag DHCPv6 needs) or "" (none).
	RA string
	// ProxyUplink is the uplink whose on-link /64 a proxy-NDP network
	// shares (netdef's ProxyNDP): the host answers neighbour
	// solicitations there for the guests' addresses (ProxyAddrs), routes
	// them to the bridge (IPv6Routes) and keeps its own /64 route on the
	// uplink (IPv6RouteMetric above the uplink's). "" for the others.
	ProxyUplink     string
	ProxyAddrs      []netip.Addr
	IPv6Routes      []netip.Prefix
	IPv6RouteMetric int64 // 0: NetworkManager's default
	// Zone is the firewalld zone NetworkManager puts the bridge in (when
	// firewalld runs): "nm-shared", the zone NetworkManager gives its own
	// shared-mode bridges (DHCP, DNS and ICMP from the guests accepted,
	// their traffic forwarded), for every network vnetguard firewalls
	// itself; "" (firewalld's default zone) for open and bridged ones,
	// which the host's firewall governs.
	Zone string
	// Uplink is the interface a bridged network (<forward mode='bridge'>
	// with <interface dev=...>) takes over as the bridge's port; "" for
	// the others.
	Uplink string
}

// BridgedName is the bridge a bridged network makes over its uplink:
// "br" + the uplink's name, cut to the kernel's 15 characters.
func BridgedName(uplink string) string {
	n := "br" + uplink
	if len(n) > 15 {
		n = n[:15]
	}
	return n
}

// PortKey is the user-data value of a bridged network's port profile.
func PortKey(network string) string { return network + "/port" }

// Forward modes the profiles backend realises now.
var supportedModes = map[string]bool{"": true, "nat": true, "route": true, "open": true, "bridge": true}

// FromDefinition turns a valid definition into its profile. What
// NetworkManager 1.42 cannot express and vnetguard does not yet add is
// refused, naming the file, the element and the rule; what it only
// approximates is said in Notes.
func FromDefinition(d *netdef.Definition, autostart bool) (Profile, error) {
	n := &d.Network
	fail := func(elem, format string, args ...any) (Profile, error) {
		return Profile{}, netdef.Problem{File: d.Path, Element: elem, Line: d.Line(elem), Rule: fmt.Sprintf(format, args...)}
	}
	p := Profile{Network: n.Name, ID: "vnetguard-" + n.Name, UUID: n.UUID, Autoconnect: autostart,
		STP: true, ForwardDelay: -1, DHCP: "none"}
	if p.UUID == "" {
		p.UUID = NameUUID(n.Name)
	}
	mode := n.ForwardMode()
	if !supportedModes[mode] {
		return fail("network/forward[0]", "forward mode %q is not supported by vnetguard's own networks yet (nat, route, open, bridge, or none for isolated)", mode)
	}
	if mode == "bridge" {
		// The uplink becomes the bridge's port; the host's own addressing
		// (DHCPv4, SLAAC) moves onto the bridge. No subnet of its own.
		f := n.Forward
		switch {
		case f.Dev != "":
			p.Uplink = f.Dev
		case len(f.Interfaces) == 1:
			p.Uplink = f.Interfaces[0].Dev
		}
		if p.Uplink == "" {
			return fail("network/forward[0]", "a bridged network of vnetguard's own needs its uplink: <interface dev='UPLINK'/>")
		}
		if n.Bridge != nil && n.Bridge.Name != "" {
			return fail("network/bridge[0]", "a bridged network's bridge is named after its uplink (%s)", BridgedName(p.Uplink))
		}
		p.Iface, p.STP, p.ForwardDelay = BridgedName(p.Uplink), false, 0
		p.IPv4Method, p.IPv6Method, p.DHCP = "auto", "auto", "upstream"
		return p, nil
	}
	if n.Bridge == nil || n.Bridge.Name == "" {
		return fail("network", "vnetguard's own networks need <bridge name='...'/>")
	}
	if mode != "open" {
		p.Zone = "nm-shared"
	}
	p.Iface = n.Bridge.Name
	if s := n.Bridge.STP; s == "off" {
		p.STP = false
	}
	if s := n.Bridge.Delay; s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 0 {
			return fail("network/bridge[0]", "delay %q is not a number of seconds", s)
		}
		// NetworkManager takes 0 or 2 to 30; the kernel raises anything
		// below 2 to 2 when STP is on anyway.
		p.ForwardDelay = min(max(v, 2), 30)
		if v == 0 {
			p.ForwardDelay = 0
		}
	}
	if n.MTU != nil {
		v, err := strconv.ParseUint(n.MTU.Size, 10, 32)
		if err != nil {
			return fail("network/mtu[0]", "size %q is not a number", n.MTU.Size)
		}
		p.MTU = uint32(v)
	}
	if n.MAC != nil {
		p.MAC = n.MAC.Address
	}
	own, err := ownDHCPReason(d)
	if err != nil {
		return Profile{}, err
	}
	var dhcp4, dhcp6 bool
	for i, ip := range n.IPs {
		pre, err := ip.Subnet()
		if err != nil {
			return fail(fmt.Sprintf("network/ip[%d]", i), "%v", err)
		}
		if pre.Addr().Is4() {
			p.IPv4 = append(p.IPv4, pre)
		} else {
			p.IPv6 = append(p.IPv6, pre)
		}
		if ip.DHCP != nil {
			dhcp4 = dhcp4 || pre.Addr().Is4()
			dhcp6 = dhcp6 || pre.Addr().Is6()
		}
	}
	switch {
	case len(p.IPv4) == 0:
		p.IPv4Method = "disabled"
	case own != "":
		// vnetguard's dnsmasq serves DHCP (and DNS); vnetguard's table
		// masquerades a nat network.
		p.IPv4Method = "manual"
	case dhcp4:
		// NetworkManager runs dnsmasq (DHCP, DNS) and, for every shared
		// network, masquerades; an isolated one gets vnetguard's drop.
		p.IPv4Method, p.DHCP = "shared", "shared"
		// Shared mode serves the first address: put the DHCP one first.
		for _, ip := range n.IPs {
			if ip.DHCP != nil {
				pre, _ := ip.Subnet()
				p.IPv4 = moveFirst(p.IPv4, pre)
				if len(ip.DHCP.Ranges) == 1 {
					p.Notes = append(p.Notes, fmt.Sprintf("NetworkManager 1.42 has no shared-dhcp-range: it leases %s", SharedRange(pre)))
				}
			}
		}
	default:
		p.IPv4Method = "manual"
	}
	if own != "" {
		p.DHCP = "dnsmasq"
		p.Notes = append(p.Notes, "DHCP and DNS from vnetguard's own dnsmasq: "+own)
	}
	switch {
	case len(p.IPv6) == 0:
		// As libvirt does: a network without IPv6 gets no IPv6 at all.
		p.IPv6Method = "disabled"
	default:
		for _, pre := range p.IPv6 {
			if pre.Bits() != 64 {
				return fail("network/ip", "IPv6 address %s: router advertisements (SLAAC) need a /64", pre)
			}
		}
		// NetworkManager sends router advertisements for the prefix,
		// unless <radvd/> asks for vnetguard's radvd, or DHCPv6 needs
		// the managed flag, which vnetguard's dnsmasq sets.
		p.IPv6Method, p.RA = "shared", "networkmanager"
		for i, ip := range n.IPs {
			if !HasRadvd(ip) {
				continue
			}
			if dhcp6 {
				return fail(fmt.Sprintf("network/ip[%d]", i), "<radvd/> and DHCPv6 on one network: vnetguard's dnsmasq sends the router advertisements DHCPv6 needs; drop <radvd/>")
			}
			p.IPv6Method, p.RA = "manual", "radvd"
		}
		if dhcp6 {
			p.IPv6Method, p.RA = "manual", "dnsmasq"
		}
	}
	if err := p.proxyNDP(d); err != nil {
		return Profile{}, err
	}
	return p, nil
}

// MaxProxied bounds the addresses a proxy-NDP network proxies: one
// neighbour proxy entry each on the uplink.
const MaxProxied = 1024

// proxyNDP fills in a proxy-NDP network's uplink, proxied addresses and
// routes. The guests' addresses must be known in advance: those of the
// DHCPv6 ranges and hosts in the shared /64 (vnetguard's dnsmasq
// advertises the prefix off-link, so guests send everything through the
// host, and hands them out; SLAAC addresses could not be proxied).
func (p *Profile) proxyNDP(d *netdef.Definition) error {
	uplink, shared := d.Network.ProxyNDP()
	if uplink == "" {
		return nil
	}
	elem := "network/metadata[0]/" + netdef.PolicyNamespace + " proxy-ndp[0]"
	fail := func(format string, args ...any) error {
		return netdef.Problem{File: d.Path, Element: elem, Line: d.Line(elem), Rule: fmt.Sprintf(format, args...)}
	}
	p.ProxyUplink = uplink
	// Far above any uplink's: the host's own traffic to the /64 stays on
	// the uplink; the guests' addresses have routes of their own.
	p.IPv6RouteMetric = 4000
	seen := map[netip.Addr]bool{}
	for _, ip := range d.Network.IPs {
		pre, err := ip.Subnet()
		if err != nil || !slices.Contains(shared, pre.Masked()) || ip.DHCP == nil {
			continue
		}
		for _, r := range ip.DHCP.Ranges {
			a, err1 := netip.ParseAddr(r.Start)
			z, err2 := netip.ParseAddr(r.End)
			if err1 != nil || err2 != nil || z.Less(a) {
				continue // Validate reports it
			}
			p.IPv6Routes = append(p.IPv6Routes, rangePrefixes(a, z)...)
			for x := a; ; x = x.Next() {
				if !seen[x] {
					seen[x] = true
					p.ProxyAddrs = append(p.ProxyAddrs, x)
				}
				if x == z || len(p.ProxyAddrs) > MaxProxied {
					break
				}
			}
		}
		for _, h := range ip.DHCP.Hosts {
			if a, err := netip.ParseAddr(h.IP); err == nil && !seen[a] {
				seen[a] = true
				p.ProxyAddrs = append(p.ProxyAddrs, a)
				p.IPv6Routes = append(p.IPv6Routes, netip.PrefixFrom(a, 128))
			}
		}
	}
	if len(p.ProxyAddrs) == 0 {
		return fail("proxy NDP needs the guests' addresses known: a DHCPv6 <range> or <host> in the uplink's /64")
	}
	if len(p.ProxyAddrs) > MaxProxied {
		return fail("proxy NDP for more than %d addresses (one neighbour proxy entry each): make the DHCPv6 ranges smaller", MaxProxied)
	}
	return nil
}

// rangePrefixes covers the addresses a to z (a <= z, one family) with the
// fewest prefixes.
func rangePrefixes(a, z netip.Addr) []netip.Prefix {
	var out []netip.Prefix
	for {
		// The widest prefix that starts at a and ends at or before z.
		bits := a.BitLen()
		for bits > 0 {
			p := netip.PrefixFrom(a, bits-1).Masked()
			if p.Addr() != a || z.Less(netdef.LastAddr(p)) {
				break
			}
			bits--
		}
		p := netip.PrefixFrom(a, bits)
		out = append(out, p)
		last := netdef.LastAddr(p)
		if last == z || !last.Next().IsValid() {
			return out
		}
		a = last.Next()
	}
}

func moveFirst(ps []netip.Prefix, p netip.Prefix) []netip.Prefix {
	out := []netip.Prefix{p}
	for _, q := range ps {
		if q != p {
			out = append(out, q)
		}
	}
	return out
}

// SharedRange is the range NetworkManager 1.42's shared dnsmasq leases from
// for an address: from the 10th host of its subnet to the last before the
// broadcast (for a /24: .10 to .254).
func SharedRange(p netip.Prefix) string {
	a := p.Masked().Addr().As4()
	n := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	size := uint32(1) << (32 - p.Bits())
	first, last := n+10, n+size-2
	if size < 16 {
		first = n + 1
	}
	f := func(v uint32) string {
		return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}).String()
	}
	return f(first) + "-" + f(last)
}

// NameUUID is the profile UUID of a network that names none: fixed by its
// name (an RFC 4122 version 5 style UUID over "vnetguard:" + name), so a
// profile can be found again without state of our own.
func NameUUID(name string) string {
	h := sha1.Sum([]byte("vnetguard:" + name))
	h[6] = h[6]&0x0f | 0x50
	h[8] = h[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

// PortSettings encodes a bridged network's port profile: the uplink
// enslaved to the bridge, with no IP configuration of its own.
func (p Profile) PortSettings() nm.Settings {
	v := dbus.MakeVariant
	return nm.Settings{
		"connection": {
			"id":             v(p.ID + "-port"),
			"uuid":           v(NameUUID(PortKey(p.Network))),
			"type":           v("802-3-ethernet"),
			"interface-name": v(p.Uplink),
			"master":         v(p.Iface),
			"slave-type":     v("bridge"),
			"autoconnect":    v(p.Autoconnect),
		},
		"user": {"data": v(map[string]string{UserDataKey: PortKey(p.Network)})},
	}
}

// Settings encodes the profile for NetworkManager's D-Bus API.
func (p Profile) Settings() nm.Settings {
	v := dbus.MakeVariant
	s := nm.Settings{
		"connection": {
			"id":             v(p.ID),
			"uuid":           v(p.UUID),
			"type":           v("bridge"),
			"interface-name": v(p.Iface),
			"autoconnect":    v(p.Autoconnect),
		},
		"bridge": {"stp": v(p.STP)},
		"user":   {"data": v(map[string]string{UserDataKey: p.Network})},
		"ipv4":   {"method": v(p.IPv4Method)},
		"ipv6":   {"method": v(p.IPv6Method)},
	}
	if p.ForwardDelay >= 0 {
		s["bridge"]["forward-delay"] = v(uint32(p.ForwardDelay))
	}
	if p.Zone != "" {
		s["connection"]["zone"] = v(p.Zone)
	}
	if p.MTU != 0 || p.MAC != "" {
		eth := map[string]dbus.Variant{}
		if p.MTU != 0 {
			eth["mtu"] = v(p.MTU)
		}
		if p.MAC != "" {
			eth["cloned-mac-address"] = v(p.MAC)
		}
		s["802-3-ethernet"] = eth
	}
	if len(p.IPv4) > 0 {
		s["ipv4"]["address-data"] = v(addressData(p.IPv4))
	}
	if len(p.IPv6) > 0 {
		s["ipv6"]["address-data"] = v(addressData(p.IPv6))
	}
	if len(p.IPv6Routes) > 0 {
		routes := make([]map[string]dbus.Variant, len(p.IPv6Routes))
		for i, r := range p.IPv6Routes {
			routes[i] = map[string]dbus.Variant{"dest": v(r.Addr().String()), "prefix": v(uint32(r.Bits()))}
		}
		s["ipv6"]["route-data"] = v(routes)
	}
	if p.IPv6RouteMetric > 0 {
		s["ipv6"]["route-metric"] = v(p.IPv6RouteMetric)
	}
	return s
}

func addressData(ps []netip.Prefix) []map[string]dbus.Variant {
	out := make([]map[string]dbus.Variant, len(ps))
	for i, p := range ps {
		out[i] = map[string]dbus.Variant{"address": dbus.MakeVariant(p.Addr().String()), "prefix": dbus.MakeVariant(uint32(p.Bits()))}
	}
	return out
}

// OwnerOf returns the vnetguard network a profile belongs to ("" when it is
// not vnetguard's).
func OwnerOf(s nm.Settings) string {
	u, ok := s["user"]["data"]
	if !ok {
		return ""
	}
	m, ok := u.Value().(map[string]string)
	if !ok {
		return ""
	}
	return m[UserDataKey]
}

// AddressesOf reads the addresses of a profile or applied connection.
func AddressesOf(s nm.Settings) []netip.Prefix {
	var out []netip.Prefix
	for _, fam := range []string{"ipv4", "ipv6"} {
		ad, ok := s[fam]["address-data"]
		if !ok {
			continue
		}
		list, _ := ad.Value().([]map[string]dbus.Variant)
		for _, m := range list {
			a, _ := m["address"].Value().(string)
			bits, _ := m["prefix"].Value().(uint32)
			if addr, err := netip.ParseAddr(a); err == nil {
				out = append(out, netip.PrefixFrom(addr, int(bits)))
			}
		}
	}
	return out
}

// WithAddresses returns a copy of applied settings whose addresses are
// those of p (for a reapply): every other setting stays as applied.
func WithAddresses(applied nm.Settings, p Profile) nm.Settings {
	out := nm.Settings{}
	for k, m := range applied {
		c := map[string]dbus.Variant{}
		for kk, vv := range m {
			// "addresses" and "routes" are the deprecated forms of
			// address-data and route-data: both given, NetworkManager
			// takes the old ones, and godbus cannot send their struct
			// arrays back as it read them.
			if (k == "ipv4" || k == "ipv6") && (kk == "addresses" || kk == "routes") {
				continue
			}
			c[kk] = vv
		}
		out[k] = c
	}
	want := p.Settings()
	for _, fam := range []string{"ipv4", "ipv6"} {
		if out[fam] == nil {
			out[fam] = map[string]dbus.Variant{}
		}
		delete(out[fam], "address-data")
		for kk, vv := range want[fam] {
			out[fam][kk] = vv
		}
	}
	return out
}

// Describe is a one-line summary of the profile's addressing, for net list.
func (p Profile) Describe() string {
	var b strings.Builder
	fmt.Fprintf(&b, "ipv4.method=%s ipv6.method=%s dhcp=%s", p.IPv4Method, p.IPv6Method, p.DHCP)
	return b.String()
}

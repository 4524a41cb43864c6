package netdef

import (
	"fmt"
	"net/netip"
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

// Error reads "FILE: <element> (line N): rule", leaving out what is empty.
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
	} else if p.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", p.Line)
	}
	b.WriteString(p.Rule)
	return b.String()
}

// tagOf turns network/ip[0]/dhcp[0]/range[1] into "range": the line
// number already tells same-named elements apart.
func tagOf(path string) string {
	last := path[strings.LastIndexByte(path, '/')+1:]
	if i := strings.IndexByte(last, '['); i >= 0 {
		last = last[:i]
	}
	if i := strings.LastIndexByte(last, ' '); i >= 0 { // namespaced: "uri local"
		last = last[i+1:]
	}
	return last
}

type validator struct {
	d    *Definition
	n    *Network
	mode string // effective forward mode
	out  []Problem
	nets []netip.Prefix // the subnets of the valid <ip>s
}

func (v *validator) add(path, format string, args ...any) {
	v.out = append(v.out, Problem{File: v.d.Path, Element: path, Line: v.d.Line(path), Rule: fmt.Sprintf(format, args...)})
}

// yesNo checks one of libvirt's yes/no attributes; empty means absent.
func (v *validator) yesNo(path, attr, val string) {
	if val != "" && val != "yes" && val != "no" {
		v.add(path, "%s=%q must be yes or no", attr, val)
	}
}

// unsigned checks an optional unsigned decimal attribute of at most bits bits.
func (v *validator) unsigned(path, attr, val string, bits int) (uint64, bool) {
	if val == "" {
		return 0, false
	}
	n, err := strconv.ParseUint(val, 10, bits)
	if err != nil {
		v.add(path, "%s=%q must be an unsigned number", attr, val)
		return 0, false
	}
	return n, true
}

// Validate checks the definition against libvirt's rules (those of its
// network XML parser and of the network driver's define/create checks)
// and vnetguard's policy. It returns nil when all hold.
func (d *Definition) Validate() []Problem {
	n := &d.Network
	v := &validator{d: d, n: n, mode: n.ForwardMode()}
	v.top()
	v.policy()
	v.proxyNDP()
	v.forward()
	v.ips()
	v.routes()
	v.dns()
	v.portgroups()
	return v.out
}

func (v *validator) top() {
	n := v.n
	const root = "network"
	switch {
	case strings.TrimSpace(n.Name) == "":
		v.add(root, "a network needs a <name>")
	case strings.ContainsAny(n.Name, "/\n"):
		v.add("network/name[0]", "name %q must not contain '/' or a newline", n.Name)
	}
	if n.UUID != "" && !validUUID(n.UUID) {
		v.add("network/uuid[0]", "uuid %q is not a UUID", n.UUID)
	}
	if strings.Contains(n.Title, "\n") {
		v.add("network/title[0]", "a title must not contain newlines")
	}
	v.yesNo(root, "ipv6", n.IPv6)
	v.yesNo(root, "trustGuestRxFilters", n.TrustGuestRxFilters)
	v.yesNo(root, "autoaddr", n.AutoAddr)
	if b := n.Bridge; b != nil {
		const p = "network/bridge[0]"
		if b.STP != "" && b.STP != "on" && b.STP != "off" {
			v.add(p, "stp=%q must be on or off", b.STP)
		}
		v.unsigned(p, "delay", b.Delay, 64)
		if b.MACTableManager != "" && b.MACTableManager != "kernel" && b.MACTableManager != "libvirt" {
			v.add(p, "macTableManager=%q must be kernel or libvirt", b.MACTableManager)
		}
	}
	if n.MAC != nil {
		if !unicastMAC(n.MAC.Address) {
			v.add("network/mac[0]", "mac %q must be a unicast MAC address", n.MAC.Address)
		}
	}
	if n.MTU != nil {
		if s, err := strconv.ParseUint(n.MTU.Size, 10, 32); err != nil || s == 0 {
			v.add("network/mtu[0]", "mtu size %q must be a positive number", n.MTU.Size)
		}
	}
	if d := n.Domain; d != nil {
		v.yesNo("network/domain[0]", "localOnly", d.LocalOnly)
		v.yesNo("network/domain[0]", "register", d.Register)
	}
	if n.Port != nil {
		v.yesNo("network/port[0]", "isolated", n.Port.Isolated)
	}
	if n.VirtualPort != nil {
		v.virtualPort("network/virtualport[0]", n.VirtualPort, true)
	}
	if n.VLAN != nil {
		v.vlan("network/vlan[0]", n.VLAN)
	}
	if n.Bandwidth != nil {
		v.bandwidth("network/bandwidth[0]", n.Bandwidth)
	}
	if n.Dnsmasq != nil {
		for i, o := range n.Dnsmasq.Options {
			if o.Value == "" {
				v.add(fmt.Sprintf("network/%s options[0]/%s option[%d]", dnsmasqNS, dnsmasqNS, i), "a dnsmasq option needs a value")
			}
		}
	}
}

const dnsmasqNS = "http://libvirt.org/schemas/network/dnsmasq/1.0"

func (v *validator) policy() {
	m := v.n.Metadata
	if m == nil || len(m.Policies) == 0 {
		return
	}
	path := "network/metadata[0]/" + PolicyNamespace + " policy[0]"
	if p := m.Policies[0].OnConflict; !OnConflict(p).Valid() {
		v.add(path, "on-conflict=%q must be renumber, destroy or warn", p)
	}
	if len(m.Policies) > 1 {
		v.add("network/metadata[0]/"+PolicyNamespace+" policy[1]", "only one vnetguard:policy element is allowed")
	}
}

func (v *validator) proxyNDP() {
	m := v.n.Metadata
	if m == nil || len(m.ProxyNDP) == 0 {
		return
	}
	path := "network/metadata[0]/" + PolicyNamespace + " proxy-ndp[0]"
	if v.n.ForwardMode() != "route" || v.n.Forward.Dev == "" {
		v.add(path, "proxy NDP needs a routed network with its uplink named: <forward mode='route' dev='UPLINK'/>")
	}
	if _, shared := v.n.ProxyNDP(); len(shared) == 0 {
		v.add(path, "proxy NDP needs an IPv6 <ip> with prefix 64: the uplink's /64")
	}
}

// validUUID follows libvirt: 32 hex digits, dashes and spaces between
// them ignored, white space around them allowed.
func validUUID(s string) bool {
	digits := 0
	for _, c := range strings.TrimSpace(s) {
		switch {
		case c == '-' || c == ' ':
		case strings.ContainsRune("0123456789abcdefABCDEF", c):
			digits++
		default:
			return false
		}
	}
	return digits == 32
}

// unicastMAC accepts libvirt's MAC syntax (six groups of one or two hex
// digits separated by ':') and refuses multicast addresses.
func unicastMAC(s string) bool {
	groups := strings.Split(s, ":")
	if len(groups) != 6 {
		return false
	}
	var first uint64
	for i, g := range groups {
		if len(g) < 1 || len(g) > 2 {
			return false
		}
		b, err := strconv.ParseUint(g, 16, 8)
		if err != nil {
			return false
		}
		if i == 0 {
			first = b
		}
	}
	return first&1 == 0
}

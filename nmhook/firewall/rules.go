// Package firewall keeps the forwarding rules of vnetguard's own networks
// in an nftables table of its own, "inet vnetguard", written over netlink
// (github.com/google/nftables). Rules decides them from the running
// networks as plain values; Table.Sync replaces the whole table with them
// in one transaction (and deletes it when no network runs). Being a table
// of its own, it coexists with NetworkManager's shared-mode tables, with
// libvirt's and with firewalld's: a drop here is final, an accept only lets
// the packet on to the other tables.
package firewall

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/vnetguard/vnetguard/netdef"
)

// TableName is the table's name (family inet).
const TableName = "vnetguard"

// Chains of the table.
const (
	Forward     = "forward"     // filter, hook forward
	Input       = "input"       // filter, hook input
	Postrouting = "postrouting" // nat, hook postrouting
)

// Rule is one rule as plain values; zero fields match anything.
type Rule struct {
	Chain    string
	IIf, OIf string
	OIfNot   string       // oifname != this
	Src, Dst netip.Prefix // each also fixes the family
	DstNot   bool         // daddr != Dst
	CtReply  bool         // ct state established,related
	Proto    string       // udp, tcp, icmpv6
	Port     uint16       // destination port (udp, tcp); 0 any
	ICMPv6   uint8        // icmpv6 type; 0 any
	Verdict  string       // accept, drop or masquerade
}

// String renders the rule in nft's syntax, for tests and logs.
func (r Rule) String() string {
	var f []string
	add := func(s string, a ...any) { f = append(f, fmt.Sprintf(s, a...)) }
	if r.IIf != "" {
		add("iifname %q", r.IIf)
	}
	if r.OIf != "" {
		add("oifname %q", r.OIf)
	}
	if r.OIfNot != "" {
		add("oifname != %q", r.OIfNot)
	}
	fam := func(p netip.Prefix) string {
		if p.Addr().Is4() {
			return "ip"
		}
		return "ip6"
	}
	if r.Src.IsValid() {
		add("%s saddr %s", fam(r.Src), r.Src)
	}
	if r.Dst.IsValid() {
		op := ""
		if r.DstNot {
			op = "!= "
		}
		add("%s daddr %s%s", fam(r.Dst), op, r.Dst)
	}
	if r.CtReply {
		add("ct state established,related")
	}
	switch {
	case r.Port != 0:
		add("%s dport %d", r.Proto, r.Port)
	case r.ICMPv6 != 0:
		add("icmpv6 type %d", r.ICMPv6)
	case r.Proto != "":
		add("meta l4proto %s", r.Proto)
	}
	add("%s", r.Verdict)
	return r.Chain + ": " + strings.Join(f, " ")
}

// ICMPv6 types accepted on a bridge: router solicitation and
// advertisement, neighbour solicitation and advertisement.
var ndTypes = []uint8{133, 134, 135, 136}

// Rules are the rules of the running networks, in order.
//
//   - every network: DHCP, DNS, neighbour discovery and RA accepted on its
//     bridge (input); forwarding between its own ports accepted;
//   - nat: IPv4 out of the subnet accepted and masqueraded, replies back
//     in; IPv6 routed both ways unless <nat ipv6='yes'/> masquerades it too;
//   - route: the subnets forwarded both ways without NAT (its DHCP comes
//     from vnetguard's dnsmasq, never shared mode, whose table would
//     masquerade it);
//   - open: nothing at all (as libvirt);
//   - isolated (no <forward>): nothing forwarded beyond the bridge;
//   - anything else forwarded to or from the bridge is dropped.
func Rules(nets []*netdef.Definition) []Rule {
	var out []Rule
	for _, d := range nets {
		n := &d.Network
		br := n.BridgeName()
		if br == "" || n.ForwardMode() == "bridge" {
			// A bridged network is part of the LAN: nothing to add.
			continue
		}
		if n.ForwardMode() == "open" {
			// As libvirt: no rules of its own, the host's firewall decides.
			continue
		}
		for _, port := range []uint16{53, 67, 547} {
			out = append(out, Rule{Chain: Input, IIf: br, Proto: "udp", Port: port, Verdict: "accept"})
		}
		out = append(out, Rule{Chain: Input, IIf: br, Proto: "tcp", Port: 53, Verdict: "accept"})
		for _, t := range ndTypes {
			out = append(out, Rule{Chain: Input, IIf: br, Proto: "icmpv6", ICMPv6: t, Verdict: "accept"})
		}
		out = append(out, Rule{Chain: Forward, IIf: br, OIf: br, Verdict: "accept"})
		mode := n.ForwardMode()
		natV6 := n.Forward != nil && n.Forward.NAT != nil && n.Forward.NAT.IPv6 == "yes"
		if mode == "nat" {
			for _, s := range n.Subnets() {
				out = append(out,
					Rule{Chain: Forward, IIf: br, Src: s, Verdict: "accept"},
					Rule{Chain: Forward, OIf: br, Dst: s, CtReply: s.Addr().Is4() || natV6, Verdict: "accept"})
				if s.Addr().Is4() || natV6 {
					out = append(out, Rule{Chain: Postrouting, Src: s, Dst: s, DstNot: true, OIfNot: br, Verdict: "masquerade"})
				}
			}
		}
		if mode == "route" {
			for _, s := range n.Subnets() {
				out = append(out,
					Rule{Chain: Forward, IIf: br, Src: s, Verdict: "accept"},
					Rule{Chain: Forward, OIf: br, Dst: s, Verdict: "accept"})
			}
		}
		out = append(out,
			Rule{Chain: Forward, IIf: br, Verdict: "drop"},
			Rule{Chain: Forward, OIf: br, Verdict: "drop"})
	}
	return out
}

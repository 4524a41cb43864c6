package conflict

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/gaissmai/bart"
)

// Network is a virtual network as the engine sees it.
type Network struct {
	Name    string
	Bridge  string         // its bridge interface: what is on it is its own
	Ports   []string       // interfaces enslaved to the bridge: also its own
	Subnets []netip.Prefix // masked
}

// Conflict is one explainable clash.
type Conflict struct {
	Network   string       `json:"network"`
	Subnet    netip.Prefix `json:"subnet"` // the network's subnet that clashes
	Kind      string       `json:"kind"`   // address or route
	Host      netip.Prefix `json:"host"`   // the host address (with its length) or route destination
	Interface string       `json:"interface,omitempty"`
	Table     int          `json:"table,omitempty"`
	Gateway   netip.Addr   `json:"gateway,omitzero"`
	Routed    bool         `json:"routed"` // reached via a gateway, not on-link
	Reason    string       `json:"reason"`
}

// entry is one host address or route that can clash.
type entry struct {
	kind    string
	host    netip.Prefix
	iface   string
	table   int
	gateway netip.Addr
	typ     string
}

// Index holds the host entries that can clash, in a prefix trie keyed by
// the masked prefix, so a check walks only covering and covered prefixes
// instead of every route. It is immutable after NewIndex.
type Index struct {
	table *bart.Table[[]entry]
}

// Well-known prefixes that never clash.
var (
	halves = map[netip.Prefix]bool{
		netip.MustParsePrefix("0.0.0.0/1"):   true,
		netip.MustParsePrefix("128.0.0.0/1"): true,
		netip.MustParsePrefix("::/1"):        true,
		netip.MustParsePrefix("8000::/1"):    true,
	}
)

// ignorable: the default route, full-tunnel halves (a VPN's way of
// replacing the default route), link-local, loopback, multicast and
// unspecified prefixes never make a virtual network unusable.
func ignorable(p netip.Prefix) bool {
	if !p.IsValid() || p.Bits() == 0 || halves[p] {
		return true
	}
	// A prefix is judged by its first address: 169.254.0.0/16 and
	// fe80::/10 are link-local, a wider prefix around them is not.
	a := p.Addr()
	return a.IsLoopback() || a.IsMulticast() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() || a.IsUnspecified()
}

// routeTypeCounts: local, broadcast and anycast routes mirror addresses
// (which are indexed themselves); multicast, throw and nat routes carry no
// unicast traffic. Blackhole, unreachable and prohibit do count: a VPN's
// kill switch over a range makes it unusable.
func routeTypeCounts(t string) bool {
	switch t {
	case "local", "broadcast", "anycast", "multicast", "throw", "nat":
		return false
	}
	return true
}

// NewIndex builds the index of a host view.
func NewIndex(h HostView) *Index {
	t := &bart.Table[[]entry]{}
	add := func(e entry) {
		key := e.host.Masked()
		t.Modify(key, func(old []entry, _ bool) ([]entry, bool) { return append(old, e), false })
	}
	for _, a := range h.Addresses {
		if ignorable(a.Prefix.Masked()) || a.Scope == "host" {
			continue
		}
		add(entry{kind: "address", host: a.Prefix, iface: a.Interface})
	}
	for _, r := range h.Routes {
		if ignorable(r.Dst) || !routeTypeCounts(r.Type) {
			continue
		}
		add(entry{kind: "route", host: r.Dst.Masked(), iface: r.Interface, table: r.Table, gateway: r.Gateway, typ: r.Type})
	}
	return &Index{table: t}
}

// Check returns the clashes of one network with the host, sorted.
func (ix *Index) Check(n Network) []Conflict {
	own := func(iface string) bool {
		return iface != "" && (iface == n.Bridge || slices.Contains(n.Ports, iface))
	}
	type key struct {
		subnet, host netip.Prefix
		iface        string
		table        int
	}
	seen := map[key]bool{}
	var out []Conflict
	visit := func(subnet netip.Prefix, entries []entry) {
		for _, e := range entries {
			if own(e.iface) {
				continue
			}
			k := key{subnet, e.host, e.iface, e.table}
			if seen[k] {
				continue
			}
			seen[k] = true
			out = append(out, newConflict(n.Name, subnet, e))
		}
	}
	for _, s := range n.Subnets {
		s = s.Masked()
		for _, es := range ix.table.Supernets(s) {
			visit(s, es)
		}
		for p, es := range ix.table.Subnets(s) {
			if p != s { // Supernets already yielded the exact match
				visit(s, es)
			}
		}
	}
	slices.SortFunc(out, compareConflicts)
	return out
}

// CheckAll checks every network.
func CheckAll(ix *Index, nets []Network) []Conflict {
	var out []Conflict
	for _, n := range nets {
		out = append(out, ix.Check(n)...)
	}
	return out
}

func compareConflicts(a, b Conflict) int {
	return cmp.Or(
		strings.Compare(a.Network, b.Network),
		a.Subnet.Addr().Compare(b.Subnet.Addr()),
		cmp.Compare(a.Subnet.Bits(), b.Subnet.Bits()),
		strings.Compare(a.Kind, b.Kind),
		a.Host.Addr().Compare(b.Host.Addr()),
		cmp.Compare(a.Host.Bits(), b.Host.Bits()),
		strings.Compare(a.Interface, b.Interface),
		cmp.Compare(a.Table, b.Table),
	)
}

func newConflict(network string, subnet netip.Prefix, e entry) Conflict {
	c := Conflict{Network: network, Subnet: subnet, Kind: e.kind, Host: e.host, Interface: e.iface, Gateway: e.gateway}
	if e.kind == "route" {
		c.Table = e.table
		c.Routed = e.gateway.IsValid()
	}
	c.Reason = explain(c, e.typ)
	return c
}

var tableNames = map[int]string{253: "default", 254: "main", 255: "local"}

func explain(c Conflict, typ string) string {
	var b strings.Builder
	var how string
	switch {
	case c.Host.Masked() == c.Subnet:
		how = "is also"
	case c.Host.Bits() < c.Subnet.Bits():
		how = "lies inside"
	default:
		how = "contains"
	}
	fmt.Fprintf(&b, "%s %s ", c.Subnet, how)
	if c.Kind == "address" {
		fmt.Fprintf(&b, "the subnet of address %s", c.Host)
		if c.Interface != "" {
			fmt.Fprintf(&b, " on %s", c.Interface)
		}
		return b.String()
	}
	if how == "is also" {
		b.WriteString("the destination of ")
	}
	if typ != "" && typ != "unicast" {
		b.WriteString(typ + " ")
	}
	fmt.Fprintf(&b, "route %s", c.Host)
	if c.Gateway.IsValid() {
		fmt.Fprintf(&b, " via %s", c.Gateway)
	}
	if c.Interface != "" {
		fmt.Fprintf(&b, " dev %s", c.Interface)
	}
	if name, ok := tableNames[c.Table]; ok {
		fmt.Fprintf(&b, " table %s", name)
	} else {
		fmt.Fprintf(&b, " table %d", c.Table)
	}
	if c.Routed {
		b.WriteString(" (routed through a gateway: that range is reached over it)")
	}
	return b.String()
}

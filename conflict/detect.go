package conflict

import (
	"cmp"
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
	Subnets []netip.Prefix // masked (Check masks them anyway)
	// Shared are subnets the network shares on purpose with a host
	// interface (a proxy-NDP network's /64 with its uplink): what is on
	// that interface inside that subnet is no clash.
	Shared []Shared
}

// Shared is a subnet a network shares with a host interface.
type Shared struct {
	Iface  string
	Subnet netip.Prefix
}

// Owns reports whether an address or route host on interface iface is
// the network's own rather than a clash: on its bridge or a port, or
// inside a subnet it shares with iface.
func (n *Network) Owns(iface string, host netip.Prefix) bool {
	return n.own(iface) || n.shares(iface, host)
}

// shares reports whether an entry on iface with prefix host lies inside a
// subnet the network shares with iface.
func (n *Network) shares(iface string, host netip.Prefix) bool {
	for _, s := range n.Shared {
		if s.Iface == iface && iface != "" && s.Subnet.Bits() <= host.Bits() && s.Subnet.Contains(host.Addr()) {
			return true
		}
	}
	return false
}

// Conflict is one explainable clash.
type Conflict struct {
	Network   string       `json:"network"`
	Subnet    netip.Prefix `json:"subnet"` // the network's subnet that clashes
	Kind      string       `json:"kind"`   // KindAddress, KindRoute or KindNetwork
	Host      netip.Prefix `json:"host"`   // the host address (with its length), route destination or other network's subnet
	Interface string       `json:"interface,omitempty"`
	Table     int          `json:"table,omitempty"` // routes only
	Gateway   netip.Addr   `json:"gateway,omitzero"`
	Routed    bool         `json:"routed"` // reached via a gateway, not on-link
	Reason    string       `json:"reason"`
}

// own reports whether an interface is the network's bridge or one of its
// ports. An entry with no interface (blackhole, unreachable) is nobody's.
func (n *Network) own(iface string) bool {
	return iface != "" && (iface == n.Bridge || slices.Contains(n.Ports, iface))
}

// dedupKey: one conflict per (subnet, kind, host prefix, interface, table).
type dedupKey struct {
	subnet, host netip.Prefix
	kind, iface  string
	table        int
}

// Check returns the clashes of one network with the host: every indexed
// address or route, in any table, whose prefix overlaps one of the
// network's subnets either way round, except those on the network's own
// bridge and ports and those inside a subnet it shares with their
// interface. The result is sorted (see CompareConflicts) and nil
// when nothing clashes. A nil Index is an empty host.
func (ix *Index) Check(n Network) []Conflict {
	if ix == nil {
		return nil
	}
	var out []Conflict
	var seen map[dedupKey]bool // made on the first hit: most networks have none
	visit := func(subnet netip.Prefix, head int32) {
		for i := head; i >= 0; i = ix.entries[i].next {
			e := &ix.entries[i]
			if n.Owns(e.iface, e.host) {
				continue
			}
			k := dedupKey{subnet, e.host, e.kind, e.iface, e.table}
			if seen == nil {
				seen = map[dedupKey]bool{}
			}
			if seen[k] {
				continue
			}
			seen[k] = true
			out = append(out, newConflict(n.Name, subnet, e))
		}
	}
	for _, s := range n.Subnets {
		if !s.IsValid() {
			continue
		}
		s = s.Masked()
		for _, head := range ix.table.Supernets(s) { // covering, and equal
			visit(s, head)
		}
		for p, head := range ix.table.Subnets(s) { // covered
			if p != s { // Supernets yielded the equal one
				visit(s, head)
			}
		}
	}
	slices.SortFunc(out, CompareConflicts)
	return out
}

// CheckAll checks every network against the host, in the order given;
// each network's conflicts are sorted. It reports no overlaps between the
// networks themselves: see CheckOverlaps.
func CheckAll(ix *Index, nets []Network) []Conflict {
	var out []Conflict
	for _, n := range nets {
		out = append(out, ix.Check(n)...)
	}
	return out
}

// CheckOverlaps reports the virtual networks whose subnets overlap each
// other's (Kind KindNetwork), once from each side: network A's conflict
// names B's subnet as Host and B's bridge as Interface, and B's names A's.
// Networks of the same name are the same network. The result is sorted.
// Use it where the host view does not already show the other network (a
// network that is only defined has no bridge address to clash with).
func CheckOverlaps(nets []Network) []Conflict {
	var t bart.Table[[]int] // subnet -> networks that have it
	for i, n := range nets {
		for _, s := range n.Subnets {
			if !s.IsValid() {
				continue
			}
			t.Modify(s.Masked(), func(old []int, _ bool) ([]int, bool) {
				if len(old) > 0 && old[len(old)-1] == i {
					return old, false
				}
				return append(old, i), false
			})
		}
	}
	type pairKey struct {
		subnet, other netip.Prefix
		name          string
	}
	var out []Conflict
	seen := map[pairKey]bool{}
	for _, n := range nets {
		visit := func(s, p netip.Prefix, owners []int) {
			for _, j := range owners {
				if nets[j].Name == n.Name {
					continue
				}
				k := pairKey{s, p, nets[j].Name}
				if seen[k] {
					continue
				}
				seen[k] = true
				c := Conflict{Network: n.Name, Subnet: s, Kind: KindNetwork, Host: p, Interface: nets[j].Bridge}
				c.Reason = explainNetwork(c, nets[j].Name)
				out = append(out, c)
			}
		}
		for _, s := range n.Subnets {
			if !s.IsValid() {
				continue
			}
			s = s.Masked()
			for p, owners := range t.Supernets(s) {
				visit(s, p, owners)
			}
			for p, owners := range t.Subnets(s) {
				if p != s {
					visit(s, p, owners)
				}
			}
		}
	}
	slices.SortFunc(out, CompareConflicts)
	return out
}

// CompareConflicts orders conflicts by network, subnet, kind, host
// prefix, interface, table and gateway: the order Check returns.
func CompareConflicts(a, b Conflict) int {
	return cmp.Or(
		strings.Compare(a.Network, b.Network),
		comparePrefix(a.Subnet, b.Subnet),
		strings.Compare(a.Kind, b.Kind),
		comparePrefix(a.Host, b.Host),
		strings.Compare(a.Interface, b.Interface),
		cmp.Compare(a.Table, b.Table),
		a.Gateway.Compare(b.Gateway),
		strings.Compare(a.Reason, b.Reason),
	)
}

func comparePrefix(a, b netip.Prefix) int {
	return cmp.Or(a.Addr().Compare(b.Addr()), cmp.Compare(a.Bits(), b.Bits()))
}

func newConflict(network string, subnet netip.Prefix, e *entry) Conflict {
	c := Conflict{Network: network, Subnet: subnet, Kind: e.kind, Host: e.host, Interface: e.iface, Gateway: e.gateway}
	if e.kind == KindRoute {
		c.Table = e.table
		c.Routed = e.gateway.IsValid()
	}
	c.Reason = explain(c, e.typ)
	return c
}

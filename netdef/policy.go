package netdef

import "net/netip"

// OnConflict is what vnetguard does when a network clashes with the host.
type OnConflict string

const (
	Renumber OnConflict = "renumber" // move it to a free subnet, guests kept
	Destroy  OnConflict = "destroy"  // stop it
	Warn     OnConflict = "warn"     // only tell
)

// Valid reports whether p is one of the three policies.
func (p OnConflict) Valid() bool {
	return p == Renumber || p == Destroy || p == Warn
}

// Policy returns the network's policy: from <metadata><vnetguard:policy
// on-conflict="..."/>, else autoaddr='yes' on <network> (the seed design's
// spelling, meaning renumber with automatic addresses). false when it names
// none, or names an invalid one (then the value is returned as written and
// Validate reports it; autoaddr does not override a broken policy element,
// so a typo is never read as consent to renumber).
func (n *Network) Policy() (OnConflict, bool) {
	if n.Metadata != nil && len(n.Metadata.Policies) > 0 {
		p := OnConflict(n.Metadata.Policies[0].OnConflict)
		return p, p.Valid()
	}
	if n.AutoAddr == "yes" {
		return Renumber, true
	}
	return "", false
}

// Policy is d.Network.Policy(), kept for callers that hold a Definition.
func (d *Definition) Policy() (OnConflict, bool) { return d.Network.Policy() }

// ProxyNDP reads <vnetguard:proxy-ndp/> in <metadata>: a routed network
// whose IPv6 /64 is its uplink's own on-link /64, shared on purpose (a
// provider that gives one /64 and routes nothing to the host): the host
// answers neighbour solicitations on the uplink for the guests (proxy
// NDP) and routes their addresses to the bridge. It returns the uplink
// (<forward dev=...>) and the shared /64s; "" when the network does not
// ask for it. The uplink's own addresses and routes inside those /64s are
// no clash for this network.
func (n *Network) ProxyNDP() (uplink string, shared []netip.Prefix) {
	if n.Metadata == nil || len(n.Metadata.ProxyNDP) == 0 || n.Forward == nil || n.Forward.Dev == "" {
		return "", nil
	}
	for _, s := range n.Subnets() {
		if s.Addr().Is6() && s.Bits() == 64 {
			shared = append(shared, s.Masked())
		}
	}
	return n.Forward.Dev, shared
}

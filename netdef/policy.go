package netdef

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

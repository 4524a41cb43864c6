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
// none or an invalid one (Validate reports that).
func (d *Definition) Policy() (OnConflict, bool) {
	if d.policy != nil {
		p := OnConflict(d.policy.onConflict)
		return p, p.Valid()
	}
	if d.Network.AutoAddr == "yes" {
		return Renumber, true
	}
	return "", false
}

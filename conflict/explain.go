package conflict

import (
	"fmt"
	"strings"
)

var tableNames = map[int]string{253: "default", 254: "main", 255: "local"}

// relation says how a network's subnet stands to the host prefix.
func relation(c Conflict) string {
	switch {
	case c.Host.Masked() == c.Subnet:
		return "is also"
	case c.Host.Bits() < c.Subnet.Bits():
		return "lies inside"
	}
	return "contains"
}

// explain writes a conflict's Reason: one sentence a user can act on, e.g.
// "192.168.122.0/24 lies inside route 192.168.0.0/16 via 10.0.0.1 dev wg0
// table 51820 (routed through a gateway: that range is reached over it)".
func explain(c Conflict, typ string) string {
	var b strings.Builder
	how := relation(c)
	fmt.Fprintf(&b, "%s %s ", c.Subnet, how)
	if c.Kind == KindAddress {
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

// explainNetwork writes the Reason of a KindNetwork conflict.
func explainNetwork(c Conflict, other string) string {
	how := relation(c)
	if how == "is also" {
		how = "is also the subnet"
	} else {
		how += " subnet"
	}
	s := fmt.Sprintf("%s %s %s of virtual network %s", c.Subnet, how, c.Host, other)
	if c.Interface != "" {
		s += " (bridge " + c.Interface + ")"
	}
	return s
}

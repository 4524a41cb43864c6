package decide

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/vnetguard/vnetguard/conflict"
)

// ErrNoPlan marks a renumber that found nowhere to go (the engine's).
var ErrNoPlan = conflict.ErrNoPlan

// PlanInput is everything needed to decide where a network's subnets move.
type PlanInput struct {
	Network    string
	Own        []netip.Prefix                    // the network's subnets as they are now
	Clashing   []netip.Prefix                    // those that must move
	Targets    []netip.Prefix                    // explicit targets from a user, one per family at most
	Others     []netip.Prefix                    // every other network's subnets, running or only defined
	Remembered func(netip.Prefix) []netip.Prefix // earlier choices for a subnet, newest first; may be nil
	Host       *conflict.Index
	Reserved   []netip.Prefix
	Pools      []conflict.Pool
	Direction  conflict.Direction
	ULA        conflict.ULAGlobalID
	Usable     map[conflict.Family]bool
}

// Plan adds a user's explicit targets to the engine's planner: each must be
// free (never silently replaced) and moves the network's one subnet of its
// family; the clashing subnets left over get automatic homes from
// conflict.Planner, which keeps them off the host, the other networks,
// the reserved ranges, all of the network's subnets, and the targets.
// Plan does no I/O.
func Plan(in PlanInput) ([]conflict.Move, error) {
	occ := conflict.NewOccupied(in.Host, in.Others, in.Reserved).With(in.Own...)
	var moves []conflict.Move
	explicit := map[netip.Prefix]bool{}
	for _, t := range in.Targets {
		from, err := onlySubnetOfFamily(in.Own, t)
		if err != nil {
			return nil, err
		}
		if explicit[from] {
			return nil, fmt.Errorf("two targets given for %s", from)
		}
		explicit[from] = true
		t = t.Masked()
		if !occ.Free(t) && t != from {
			return nil, fmt.Errorf("%s is not free: it overlaps the host, another network or a reserved range", t)
		}
		moves = append(moves, conflict.Move{From: from, To: t})
		occ = occ.With(t)
	}
	// The engine plans from conflicts: one per subnet still to move.
	var pending []conflict.Conflict
	for _, c := range in.Clashing {
		if !explicit[c.Masked()] {
			pending = append(pending, conflict.Conflict{Network: in.Network, Subnet: c.Masked()})
		}
	}
	pl := conflict.Planner{Occupied: occ, Pools: in.Pools, Direction: in.Direction, ULA: in.ULA,
		Usable: in.Usable, Remembered: in.Remembered}
	auto, err := pl.Plan(conflict.Network{Name: in.Network, Subnets: in.Own}, pending)
	if err != nil {
		return nil, err
	}
	return append(moves, auto.Moves...), nil
}

func onlySubnetOfFamily(own []netip.Prefix, target netip.Prefix) (netip.Prefix, error) {
	var match []netip.Prefix
	for _, o := range own {
		if o.Addr().Is4() == target.Addr().Is4() {
			match = append(match, o)
		}
	}
	switch len(match) {
	case 1:
		return match[0], nil
	case 0:
		return netip.Prefix{}, fmt.Errorf("the network has no subnet of %s's family to move", target)
	}
	return netip.Prefix{}, fmt.Errorf("the network has %d subnets of %s's family; cannot tell which to move", len(match), target)
}

// subnetsOf lists the distinct network subnets named in conflicts.
func subnetsOf(found []conflict.Conflict) []netip.Prefix {
	var out []netip.Prefix
	for _, c := range found {
		if !slices.Contains(out, c.Subnet) {
			out = append(out, c.Subnet)
		}
	}
	return out
}

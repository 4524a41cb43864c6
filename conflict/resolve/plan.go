package resolve

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/vnetguard/vnetguard/conflict"
)

// ErrNoPlan marks a renumber that found nowhere to go.
var ErrNoPlan = errors.New("no subnet to move to")

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

// Plan chooses where each clashing subnet, and each subnet a user named a
// target family for, moves. Candidates avoid the host, the other networks,
// the reserved ranges, the network's own subnets that stay, and targets
// already chosen in this plan. An explicit target that is not free is an
// error, never silently replaced. Plan does no I/O.
func Plan(in PlanInput) ([]conflict.Move, error) {
	targets := map[netip.Prefix]netip.Prefix{}
	var moving []netip.Prefix
	for _, t := range in.Targets {
		from, err := onlySubnetOfFamily(in.Own, t)
		if err != nil {
			return nil, err
		}
		if _, dup := targets[from]; dup {
			return nil, fmt.Errorf("two targets given for %s", from)
		}
		targets[from] = t.Masked()
		moving = append(moving, from)
	}
	for _, c := range in.Clashing {
		if !slices.Contains(moving, c) {
			moving = append(moving, c)
		}
	}
	taken := slices.Clone(in.Others)
	for _, o := range in.Own {
		if !slices.Contains(moving, o) {
			taken = append(taken, o)
		}
	}
	var moves []conflict.Move
	for _, from := range moving {
		occ := conflict.NewOccupied(in.Host, taken, in.Reserved)
		to, explicit := targets[from]
		if explicit {
			if !occ.Free(to) {
				return nil, fmt.Errorf("%s is not free: it overlaps the host, another network or a reserved range", to)
			}
		} else {
			req := conflict.Request{
				Network:   in.Network,
				Family:    familyOf(from),
				Bits:      from.Bits(),
				Pools:     in.Pools,
				Direction: in.Direction,
				ULA:       in.ULA,
				Usable:    in.Usable,
			}
			if in.Remembered != nil {
				req.Remembered = in.Remembered(from)
			}
			var err error
			if to, err = occ.Allocate(req); err != nil {
				return nil, fmt.Errorf("%w for %s of network %s: %v", ErrNoPlan, from, in.Network, err)
			}
		}
		moves = append(moves, conflict.Move{From: from, To: to})
		taken = append(taken, to)
	}
	return moves, nil
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

func familyOf(p netip.Prefix) conflict.Family {
	if p.Addr().Is4() {
		return conflict.IPv4
	}
	return conflict.IPv6
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

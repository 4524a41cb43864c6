package conflict

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
)

// Move is one subnet of a network moving to another.
type Move struct {
	From netip.Prefix `json:"from"`
	To   netip.Prefix `json:"to"`
}

// Plan says where each clashing subnet of a network moves.
type Plan struct {
	Network string `json:"network"`
	Moves   []Move `json:"moves"` // in the order of the network's Subnets
}

// ErrNoPlan marks a plan that found nowhere to move a subnet.
var ErrNoPlan = errors.New("no subnet to move to")

// Planner holds what every renumbering plan of one pass shares. It is a
// value with no state of its own: Plan does no I/O and changes nothing.
type Planner struct {
	Occupied  *Occupied       // the host, the other networks (running or only defined), reserved ranges
	Pools     []Pool          // IPv4 pools; nil means DefaultPools4
	Direction Direction       // see Request.Direction
	ULA       ULAGlobalID     // the host's ULA /48 for IPv6 subnets
	Usable    map[Family]bool // see Request.Usable

	// Remembered lists earlier homes of a subnet, best first, tried before
	// the pools (Request.Remembered). May be nil.
	Remembered func(from netip.Prefix) []netip.Prefix
}

// Plan chooses a new subnet for each of n's subnets that a conflict of n
// names (conflicts of other networks are ignored). Each new subnet keeps
// the old one's family and size, and avoids the planner's Occupied, all of
// n's current subnets (those that stay and those that move, so that
// nothing lands on a subnet still in use while the move happens), and the
// subnets chosen earlier in the same plan. A subnet a conflict names that
// n does not have is an error, and so is a subnet with nowhere to go
// (wrapping ErrNoPlan and the allocator's error, e.g. ErrUnusable when
// IPv6 is not usable). No conflicts of n: an empty plan.
func (pl *Planner) Plan(n Network, conflicts []Conflict) (Plan, error) {
	plan := Plan{Network: n.Name}
	clashing := map[netip.Prefix]bool{}
	for _, c := range conflicts {
		if c.Network != n.Name {
			continue
		}
		s := c.Subnet.Masked()
		if !slices.ContainsFunc(n.Subnets, func(p netip.Prefix) bool { return p.Masked() == s }) {
			return Plan{}, fmt.Errorf("network %s has no subnet %s, yet a conflict names it", n.Name, s)
		}
		clashing[s] = true
	}
	if len(clashing) == 0 {
		return plan, nil
	}
	occ := pl.Occupied
	if occ == nil {
		occ = NewOccupied(nil, nil, nil)
	}
	occ = occ.With(n.Subnets...)
	for _, s := range n.Subnets {
		from := s.Masked()
		if !clashing[from] {
			continue
		}
		delete(clashing, from) // a subnet listed twice moves once
		req := Request{
			Network:   n.Name,
			Family:    FamilyOf(from),
			Bits:      from.Bits(),
			Pools:     pl.Pools,
			Direction: pl.Direction,
			ULA:       pl.ULA,
			Usable:    pl.Usable,
		}
		if pl.Remembered != nil {
			req.Remembered = pl.Remembered(from)
		}
		to, err := occ.Allocate(req)
		if err != nil {
			return Plan{}, fmt.Errorf("%w for %s of network %s: %w", ErrNoPlan, from, n.Name, err)
		}
		plan.Moves = append(plan.Moves, Move{From: from, To: to})
		occ = occ.With(to)
	}
	return plan, nil
}

// PlanRenumber is Planner.Plan in one call, for callers with no Planner to
// keep: remembered maps a subnet to its earlier homes, best first (nil:
// none), pools nil means DefaultPools4, usable nil means both families.
func PlanRenumber(o *Occupied, n Network, conflicts []Conflict, remembered map[netip.Prefix][]netip.Prefix,
	dir Direction, pools []Pool, ula ULAGlobalID, usable map[Family]bool) (Plan, error) {
	pl := Planner{Occupied: o, Pools: pools, Direction: dir, ULA: ula, Usable: usable}
	if remembered != nil {
		pl.Remembered = func(from netip.Prefix) []netip.Prefix { return remembered[from] }
	}
	return pl.Plan(n, conflicts)
}

// Package backend is the contract between the guard and the places virtual
// networks live (libvirt; vnetguard's own NetworkManager profiles): a
// backend lists its networks and carries out effects on them, each
// crash-safe. The guard decides; a backend only does.
package backend

import (
	"context"
	"errors"
	"net/netip"

	"github.com/vnetguard/vnetguard/conflict"
	"github.com/vnetguard/vnetguard/netdef"
)

// ErrNotFound is what a backend returns for a network it does not have.
var ErrNotFound = errors.New("no such network")

// Network is one virtual network as its backend reports it.
type Network struct {
	Backend string
	Name    string
	Active  bool
	// Live is the network as it runs (as defined, when inactive); Defined
	// its persistent definition, nil when transient or not asked for.
	Live    *netdef.Definition
	Defined *netdef.Definition
	// Err: the network could not be read or parsed. It is reported and
	// never acted on; the other networks are still protected.
	Err error
}

// Backend owns one kind of virtual network and carries out effects on
// them. Each effect is crash-safe: it records its intent before the first
// destructive step, so that Recover can complete or undo it after a kill
// at any point.
type Backend interface {
	Name() string
	// Networks lists every network, running or only defined; with full,
	// the persistent definitions are read too.
	Networks(ctx context.Context, full bool) ([]Network, error)
	// Network reads one network fully (ErrNotFound when there is none).
	Network(ctx context.Context, name string) (Network, error)
	// Renumber restarts a running network from newXML, its live XML with
	// the subnets moved, keeping its guests connected.
	Renumber(ctx context.Context, n Network, newXML []byte) error
	// Destroy stops a running network; its definition is kept.
	Destroy(ctx context.Context, n Network) error
	// Pending names the networks with an unfinished effect.
	Pending() ([]string, error)
	// Recover completes or undoes the unfinished effect on a network and
	// says what it did.
	Recover(ctx context.Context, name string) (Recovered, error)
	Close() error
}

// Recovered is what finishing an unfinished effect did.
type Recovered struct {
	// Note says it in words; "" when there was nothing to do.
	Note string
	// Moves are the subnets of a renumber it carried through to the new
	// subnets (as the network ran → as it runs now); none when it rolled
	// back or found the network as someone else left it. The guard
	// remembers them as it remembers a renumber it made itself.
	Moves []Move
}

// Move is one subnet a renumber moved (the engine's type).
type Move = conflict.Move

// MovesBetween pairs the subnets of a network's XML before and after a
// renumber, each family in order, and lists those that changed. XML that
// does not parse gives none.
func MovesBetween(oldXML, newXML []byte) []Move {
	o, err1 := netdef.Parse(oldXML)
	n, err2 := netdef.Parse(newXML)
	if err1 != nil || err2 != nil {
		return nil
	}
	var out []Move
	for _, v4 := range []bool{true, false} {
		from, to := family(o.Network.Subnets(), v4), family(n.Network.Subnets(), v4)
		for i := range min(len(from), len(to)) {
			if from[i].Masked() != to[i].Masked() {
				out = append(out, Move{From: from[i].Masked(), To: to[i].Masked()})
			}
		}
	}
	return out
}

func family(ps []netip.Prefix, v4 bool) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range ps {
		if p.Addr().Is4() == v4 {
			out = append(out, p)
		}
	}
	return out
}

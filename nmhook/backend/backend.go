// Package backend is the contract between the guard and the places virtual
// networks live (libvirt; vnetguard's own NetworkManager profiles): a
// backend lists its networks and carries out effects on them, each
// crash-safe. The guard decides; a backend only does.
package backend

import (
	"context"
	"errors"

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
	// says what it did ("" when there was nothing to do).
	Recover(ctx context.Context, name string) (string, error)
	Close() error
}

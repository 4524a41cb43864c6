// Package guard runs vnetguard's flow: it reads the host view and the
// virtual networks of every backend, asks the pure decision (conflict/decide)
// what to do about each, and has the network's backend carry it out. Every
// action happens under a per-network lock on a fresh read, and every run
// first completes or undoes what an interrupted run left half done.
package guard

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"sync/atomic"
	"time"

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

// Backend owns one kind of virtual network (libvirt's, vnetguard's own
// NetworkManager profiles) and carries out effects on them. Each effect is
// crash-safe: it records its intent before the first destructive step, so
// that Recover can complete or undo it after a kill at any point.
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
	// Recover completes or undoes the unfinished effect on a network.
	Recover(ctx context.Context, name string) (string, error)
	Close() error
}

// Host reads the host: addresses and routes, and bridges' ports.
type Host interface {
	Read() (conflict.HostView, error)
	Ports() (map[string][]string, error) // bridge -> its ports
}

// Settings are assembled once, from flags and the configuration file, and
// replaced whole on a reload.
type Settings struct {
	DefaultPolicy netdef.OnConflict // for networks whose XML names none
	Direction     conflict.Direction
	Pools         []conflict.Pool // IPv4 pools; nil means the defaults
	Reserved      []netip.Prefix
	ULA           conflict.ULAGlobalID
	Usable        map[conflict.Family]bool
	CacheDir      string // remembered subnets and last actions
	LockDir       string // per-network locks shared by all vnetguard runs
	LockWait      time.Duration
	Ignore        []string // network names never touched
	DryRun        bool     // decide and report, act on nothing
	// DampingWindow: an automatic run moves a network at most once per
	// window, and never back onto a subnet it left within it. Zero for
	// runs a user asked for.
	DampingWindow time.Duration
	// RecoverTimeout bounds the completion of one unfinished effect; it
	// runs on a fresh context, whatever is left of the caller's.
	RecoverTimeout time.Duration
}

// Guard detects and acts over the networks of its backends.
type Guard struct {
	Backends []Backend
	Host     Host
	Log      *slog.Logger
	Now      func() time.Time // nil: time.Now

	settings atomic.Pointer[Settings]
	own      atomic.Pointer[map[string]bool]
}

// New makes a guard.
func New(s Settings, host Host, log *slog.Logger, backends ...Backend) *Guard {
	if log == nil {
		log = slog.Default()
	}
	g := &Guard{Backends: backends, Host: host, Log: log}
	g.SetSettings(s)
	return g
}

// SetSettings replaces the settings; passes already running keep theirs.
func (g *Guard) SetSettings(s Settings) {
	s.Ignore = slices.Clone(s.Ignore)
	s.Reserved = slices.Clone(s.Reserved)
	g.settings.Store(&s)
}

// Settings returns the settings in force.
func (g *Guard) Settings() Settings { return *g.settings.Load() }

// Own tells whether an interface was, at the last read, a virtual network's
// bridge or one of its ports: the listener ignores events there, which are
// libvirt's or vnetguard's own doing.
func (g *Guard) Own(ifname string) bool {
	m := g.own.Load()
	return m != nil && (*m)[ifname]
}

// Close closes every backend.
func (g *Guard) Close() error {
	var errs []error
	for _, b := range g.Backends {
		errs = append(errs, b.Close())
	}
	return errors.Join(errs...)
}

func (g *Guard) now() time.Time {
	if g.Now != nil {
		return g.Now()
	}
	return time.Now()
}

func (g *Guard) backend(name string) Backend {
	for _, b := range g.Backends {
		if b.Name() == name {
			return b
		}
	}
	return nil
}

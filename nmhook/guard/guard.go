// Package guard runs vnetguard's flow: it reads the host view and the
// virtual networks of every backend, asks the pure decision (conflict/decide)
// what to do about each, and has the network's backend carry it out. Every
// action happens under a per-network lock on a fresh read, and every run
// first completes or undoes what an interrupted run left half done.
package guard

import (
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"sync/atomic"
	"time"

	"github.com/vnetguard/vnetguard/conflict"
	"github.com/vnetguard/vnetguard/netdef"
	"github.com/vnetguard/vnetguard/nmhook/backend"
)

// Network, Backend, Recovered and Move are the backend contract
// (nmhook/backend).
type (
	Network   = backend.Network
	Backend   = backend.Backend
	Recovered = backend.Recovered
	Move      = backend.Move
)

// ErrNotFound is what a backend returns for a network it does not have.
var ErrNotFound = backend.ErrNotFound

// Host reads the host: addresses and routes, and bridges' ports
// (bridge -> its ports), in one go. With keep, a route whose destination
// keep rejects may be left out.
type Host interface {
	Read(keep func(netip.Prefix) bool) (conflict.HostView, map[string][]string, error)
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
	watched  atomic.Pointer[[]watchedSubnet]
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

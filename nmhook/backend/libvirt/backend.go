// Package libvirt is the guard's backend for libvirt's networks, spoken to
// over libvirt's native RPC (netdef/libvirt/rpc). It renumbers a running
// network without touching its persistent definition (destroy, then create
// from the edited live XML with the same name and UUID), and keeps its
// guests connected: libvirt's network ports are reclaimed, the guests' taps
// put back into the bridge, and each running domain's NIC bounced through
// libvirt so that the guest sees a carrier loss and re-leases.
//
// Every renumber is crash-safe: an intent record (the old and new XML, the
// persistent definition, ports, taps, NICs) is synced to disk before the
// first destructive step, and Recover completes or undoes it from what it
// then observes, after a kill at any point, a libvirtd that died or a
// reply that never came.
package libvirt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vnetguard/vnetguard/netdef"
	"github.com/vnetguard/vnetguard/netdef/libvirt/rpc"
	"github.com/vnetguard/vnetguard/nmhook/backend"
	"github.com/vnetguard/vnetguard/nmhook/state"
)

// Name is the backend's name in outcomes, logs and intent keys.
const Name = "libvirt"

// Backend implements backend.Backend for libvirt.
type Backend struct {
	Intents state.Intents
	Log     *slog.Logger
	// LinkDown is how long a guest's NIC stays down when bounced: long
	// enough for its DHCP client to see the carrier go.
	LinkDown time.Duration
	// CompleteTimeout bounds carrying a change through once its record is
	// written (default 2 minutes), whatever the caller's context says.
	CompleteTimeout time.Duration
	// StatusDir holds libvirt's live network status files ("" never reads
	// them).
	StatusDir string
	// Dial makes a new connection (re-dialled after a lost reply).
	Dial func(ctx context.Context) (*rpc.Conn, error)

	mu   sync.Mutex
	conn *rpc.Conn
}

// New returns a backend that dials qemu:///system (monolithic libvirtd or
// the split daemons) on first use.
func New(intentDir string, log *slog.Logger) *Backend {
	if log == nil {
		log = slog.Default()
	}
	return &Backend{
		Intents:   state.Intents{Dir: intentDir},
		Log:       log,
		LinkDown:  500 * time.Millisecond,
		StatusDir: StatusDir,
		Dial:      func(ctx context.Context) (*rpc.Conn, error) { return rpc.Dial(ctx) },
	}
}

func (b *Backend) Name() string { return Name }

// Close closes the connection: libvirtd logs an I/O error for a client
// that just goes away.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.conn == nil {
		return nil
	}
	err := b.conn.Close()
	b.conn = nil
	return err
}

// call runs f on the connection, dialling one if needed. After a lost
// reply the connection is unusable (later calls on it give ErrClosed): it
// is dropped, and the next call dials afresh. A call that met a closed
// connection was never sent, so it is tried once more on a new one.
func (b *Backend) call(ctx context.Context, f func(*rpc.Conn) error) error {
	err := b.callOnce(ctx, f)
	if errors.Is(err, rpc.ErrClosed) {
		err = b.callOnce(ctx, f)
	}
	return err
}

func (b *Backend) callOnce(ctx context.Context, f func(*rpc.Conn) error) error {
	b.mu.Lock()
	c := b.conn
	if c != nil && !c.Alive() {
		// libvirtd went away (a restart) since the last call.
		c.Close()
		b.conn, c = nil, nil
	}
	b.mu.Unlock()
	if c == nil {
		nc, err := b.Dial(ctx)
		if err != nil {
			return err
		}
		b.mu.Lock()
		if b.conn == nil {
			b.conn = nc
		} else {
			nc.Close()
		}
		c = b.conn
		b.mu.Unlock()
	}
	err := f(c)
	if errors.Is(err, rpc.ErrNoReply) || errors.Is(err, rpc.ErrClosed) {
		b.mu.Lock()
		if b.conn == c {
			b.conn.Close()
			b.conn = nil
		}
		b.mu.Unlock()
	}
	return err
}

// Networks lists libvirt's networks, parsed. A network whose XML cannot be
// read or parsed carries Err and is skipped by the guard. A light read
// (full=false, what every check does) takes the running networks from
// libvirt's status files when they are there and as expected: no call
// into libvirt at all. Otherwise, and for a full read, libvirt is asked.
func (b *Backend) Networks(ctx context.Context, full bool) ([]backend.Network, error) {
	var nets []rpc.Network
	if !full && b.StatusDir != "" {
		parsed, err := readStatusNetworks(b.StatusDir)
		if err == nil {
			return parsed, nil
		}
		b.Log.Debug("libvirt status files unusable; asking libvirt", "dir", b.StatusDir, "error", err)
	}
	err := b.call(ctx, func(c *rpc.Conn) (err error) {
		nets, err = c.Networks(ctx, full)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list libvirt networks: %w", err)
	}
	return convertAll(nets), nil
}

// convertAll parses the networks on every CPU: with hundreds of networks,
// parsing is most of a check's cost.
func convertAll(nets []rpc.Network) []backend.Network {
	out := make([]backend.Network, len(nets))
	parallelFor(len(nets), func(i int) { out[i] = convert(nets[i]) })
	return out
}

// parallelFor runs f(0..n-1) on as many goroutines as there are CPUs and
// returns when all are done.
func parallelFor(n int, f func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), n) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				f(i)
			}
		})
	}
	wg.Wait()
}

// Network reads one network with its persistent definition.
func (b *Backend) Network(ctx context.Context, name string) (backend.Network, error) {
	var n rpc.Network
	err := b.call(ctx, func(c *rpc.Conn) (err error) {
		n, err = c.Network(ctx, name, true)
		return err
	})
	if errors.Is(err, rpc.ErrNotFound) {
		return backend.Network{}, fmt.Errorf("libvirt network %s: %w", name, backend.ErrNotFound)
	}
	if err != nil {
		return backend.Network{}, fmt.Errorf("read libvirt network %s: %w", name, err)
	}
	return convert(n), nil
}

func convert(n rpc.Network) backend.Network {
	g := backend.Network{Backend: Name, Name: n.Name, Active: n.Active}
	if n.Err != nil {
		g.Err = n.Err
		return g
	}
	g.Live, g.Err = parseValid(n.Name, "live", n.LiveXML)
	if g.Err == nil && n.DefinedXML != "" {
		g.Defined, g.Err = parseValid(n.Name, "defined", n.DefinedXML)
	}
	return g
}

func parseValid(name, which, xml string) (*netdef.Definition, error) {
	if xml == "" {
		return nil, fmt.Errorf("libvirt gave no %s XML for network %s", which, name)
	}
	d, err := netdef.Parse([]byte(xml))
	if err != nil {
		return nil, fmt.Errorf("%s XML of libvirt network %s: %w", which, name, err)
	}
	d.Path = "libvirt:" + name
	if probs := d.Validate(); len(probs) > 0 {
		return nil, fmt.Errorf("%s XML of libvirt network %s is invalid: %w", which, name, probs[0])
	}
	return d, nil
}

// Destroy stops a running network; libvirt keeps its definition.
func (b *Backend) Destroy(ctx context.Context, n backend.Network) error {
	err := b.call(ctx, func(c *rpc.Conn) error { return c.DestroyNetwork(ctx, n.Name) })
	if err != nil {
		return fmt.Errorf("stop libvirt network %s: %w", n.Name, err)
	}
	return nil
}

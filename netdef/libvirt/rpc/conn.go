// Package rpc is a thin, context-aware client for libvirt's native RPC
// protocol, built on github.com/digitalocean/go-libvirt (pure Go, no cgo).
//
// It exists for the renumber backend, which needs what libvirt-dbus lacks:
// network ports (saved before a network is destroyed, reclaimed after it is
// re-created) and live device updates (a guest NIC's link state bounced so
// that the guest re-leases). Every method is one small primitive with a
// documented outcome, so that a crash-safe caller can re-read the state and
// repeat a step: the reads return what libvirt said, and the writes that
// can be made idempotent are (DestroyNetwork, ReclaimPort).
//
// # Contexts and unknown outcomes
//
// go-libvirt's calls take no context. Each call here runs with its context
// armed to close the connection: when ctx ends before libvirt answers, the
// socket is closed, which makes the pending call return at once. That call,
// and any other call in flight on the Conn, then fails with ErrNoReply: the
// request may or may not have been carried out. The Conn is closed for good
// at that point (later calls fail with ErrClosed without sending anything);
// the caller re-dials and re-reads the state before deciding again. A
// connection lost for any other reason (libvirtd exits or crashes) is
// reported the same way.
//
// # Split daemons
//
// Hosts with libvirt's modular daemons run virtnetworkd for networks and
// virtqemud for QEMU domains, each with its own socket; other hosts run the
// monolithic libvirtd. Dial picks the layout from the sockets present in
// /run/libvirt and talks to each object kind's own daemon.
package rpc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	libvirt "github.com/digitalocean/go-libvirt"
)

var (
	// ErrUnavailable means no libvirt daemon answered: its socket is
	// missing, refuses connections, or the daemon did not complete the
	// handshake before the context ended. Nothing was done.
	ErrUnavailable = errors.New("libvirt unavailable")
	// ErrNotFound means libvirt has no such network, network port or
	// domain (or, for SetLink, the domain no longer runs or no longer has
	// the NIC).
	ErrNotFound = errors.New("not found")
	// ErrNoReply means a request was sent but no answer came: the context
	// ended first or the connection dropped. The outcome is unknown. The
	// Conn is closed; dial again and re-read the state.
	ErrNoReply = errors.New("no reply from libvirt, outcome unknown")
	// ErrClosed means the Conn was closed (by Close, or after ErrNoReply)
	// before the request was sent. Nothing was done.
	ErrClosed = errors.New("libvirt connection closed")
)

// Where libvirt's daemons listen.
const (
	// DefaultRunDir holds libvirt's system sockets.
	DefaultRunDir = "/run/libvirt"

	monolithicSocket = "libvirt-sock"      // libvirtd: every driver
	networkSocket    = "virtnetworkd-sock" // modular: networks
	qemuSocket       = "virtqemud-sock"    // modular: QEMU domains

	qemuURI    = "qemu:///system"
	networkURI = "network:///system"
)

// closeTimeout bounds the polite goodbye in Close (a ConnectClose call,
// without which libvirtd logs an I/O error). A daemon that does not answer
// it within this time is cut off. A variable for tests.
var closeTimeout = 2 * time.Second

// parallel bounds the calls one method keeps in flight (one XML per network
// or domain). libvirtd serves up to max_client_requests (default 5) calls
// of one client at a time.
const parallel = 4

// Option changes how Dial connects.
type Option func(*options)

type options struct {
	runDir string
}

// WithRunDir makes Dial look for libvirt's sockets in dir instead of
// DefaultRunDir (tests).
func WithRunDir(dir string) Option {
	return func(o *options) { o.runDir = dir }
}

// Conn is a connection to libvirt for networks and, through the same or a
// second socket, for QEMU domains. Its methods may be called concurrently.
// A Conn is unusable after any method returned ErrNoReply; Close it anyway.
type Conn struct {
	net    *link // networks and their ports
	dom    *link // domains: == net with libvirtd, nil if unavailable
	domErr error // why dom is nil

	mu     sync.Mutex
	closed bool           // no new calls: Close or abort ran
	calls  sync.WaitGroup // calls in flight

	abortOnce sync.Once
	aborted   chan struct{} // closed once abort has cut every socket
}

// link is one go-libvirt connection and the socket under it, which abort
// closes to unblock its pending calls.
type link struct {
	path string
	lv   *libvirt.Libvirt

	mu  sync.Mutex
	nc  net.Conn // set once dialled
	cut bool     // cutOff ran: dial nothing more
}

// ctxDialer dials a link's socket within ctx. It records the socket so
// that cutOff can close it, however far the handshake has got.
type ctxDialer struct {
	ctx context.Context
	k   *link
}

func (d ctxDialer) Dial() (net.Conn, error) {
	var nd net.Dialer
	nc, err := nd.DialContext(d.ctx, "unix", d.k.path)
	if err != nil {
		return nil, err
	}
	d.k.mu.Lock()
	defer d.k.mu.Unlock()
	if d.k.cut {
		nc.Close()
		return nil, net.ErrClosed
	}
	d.k.nc = nc
	return nc, nil
}

// cutOff closes the link's socket: go-libvirt's reader then ends and every
// pending call on it returns.
func (k *link) cutOff() {
	k.mu.Lock()
	k.cut = true
	nc := k.nc
	k.mu.Unlock()
	if nc != nil {
		nc.Close()
	}
}

// dialLink connects to the socket at path and opens uri on it, all within
// ctx. On failure nothing is left open.
func dialLink(ctx context.Context, path, uri string) (*link, error) {
	k := &link{path: path}
	k.lv = libvirt.NewWithDialer(ctxDialer{ctx: ctx, k: k})
	stop := context.AfterFunc(ctx, k.cutOff)
	err := k.lv.ConnectToURI(libvirt.ConnectURI(uri))
	if !stop() {
		// ctx ended during the handshake; even if it completed, the
		// socket is (being) closed.
		k.cutOff()
		if err == nil {
			<-k.lv.Disconnected()
		}
		return nil, fmt.Errorf("%w: %s: %w", ErrUnavailable, path, ctx.Err())
	}
	if err != nil {
		k.cutOff()
		var lerr libvirt.Error
		if errors.As(err, &lerr) {
			// The daemon answered and refused (authentication, unknown
			// URI): not an absent daemon, so no ErrUnavailable.
			return nil, fmt.Errorf("libvirt: open %s on %s: %w", uri, path, err)
		}
		return nil, fmt.Errorf("%w: %s: %w", ErrUnavailable, path, err)
	}
	return k, nil
}

// Dial connects to libvirt's system instance. With libvirt's modular
// daemons (virtnetworkd-sock present) networks go to virtnetworkd
// (network:///system) and domains to virtqemud (qemu:///system); if
// virtqemud cannot be reached, Dial still succeeds and the domain methods
// return ErrUnavailable. Otherwise both go to libvirtd's libvirt-sock
// (qemu:///system). ctx bounds only the dial: each call has its own.
func Dial(ctx context.Context, opts ...Option) (*Conn, error) {
	o := options{runDir: DefaultRunDir}
	for _, opt := range opts {
		opt(&o)
	}
	c := &Conn{aborted: make(chan struct{})}
	netPath := filepath.Join(o.runDir, networkSocket)
	if _, err := os.Stat(netPath); err != nil {
		k, err := dialLink(ctx, filepath.Join(o.runDir, monolithicSocket), qemuURI)
		if err != nil {
			return nil, err
		}
		c.net, c.dom = k, k
		return c, nil
	}
	k, err := dialLink(ctx, netPath, networkURI)
	if err != nil {
		return nil, err
	}
	c.net = k
	c.dom, c.domErr = dialLink(ctx, filepath.Join(o.runDir, qemuSocket), qemuURI)
	return c, nil
}

// links lists the distinct connections.
func (c *Conn) links() []*link {
	if c.dom == nil || c.dom == c.net {
		return []*link{c.net}
	}
	return []*link{c.net, c.dom}
}

// abort closes every socket of c for good, unblocking all pending calls.
func (c *Conn) abort() {
	c.abortOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
		for _, k := range c.links() {
			k.cutOff()
		}
		close(c.aborted)
	})
}

// Close says goodbye to libvirt (so that it logs no I/O error), closes the
// sockets and waits for every goroutine the Conn started, including calls
// still in flight, which fail with ErrNoReply. A daemon that does not
// acknowledge within 2 s is cut off. Close is safe to call more than once
// and after ErrNoReply.
func (c *Conn) Close() error {
	c.mu.Lock()
	polite := !c.closed
	c.closed = true
	c.mu.Unlock()

	var err error
	if polite {
		ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
		stop := context.AfterFunc(ctx, c.abort)
		for _, k := range c.links() {
			if e := k.lv.ConnectClose(); e != nil && err == nil {
				err = fmt.Errorf("libvirt: close %s: %w: %w", k.path, ErrNoReply, e)
			}
		}
		if !stop() {
			<-c.aborted
		}
		cancel()
	}
	c.abort()
	c.calls.Wait()
	for _, k := range c.links() {
		// Closed once go-libvirt's reader and its clean-up have ended.
		<-k.lv.Disconnected()
	}
	return err
}

// answered reports whether err (from a go-libvirt call) is libvirt's own
// answer rather than a failure to get one.
func answered(err error) bool {
	var lerr libvirt.Error
	return err == nil || errors.As(err, &lerr) || errors.Is(err, libvirt.ErrUnsupported)
}

// call runs f on link k (nil: unavailable, for the reason in c.domErr) so
// that ctx ending closes the Conn and returns ErrNoReply. A libvirt error
// comes back as it is, for the caller to classify with classify.
func (c *Conn) call(ctx context.Context, k *link, f func(*libvirt.Libvirt) error) error {
	if k == nil {
		return c.domErr
	}
	if err := ctx.Err(); err != nil {
		return err // nothing sent
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	c.calls.Add(1)
	c.mu.Unlock()
	defer c.calls.Done()

	stop := context.AfterFunc(ctx, c.abort)
	err := f(k.lv)
	if !stop() {
		<-c.aborted
		if answered(err) {
			return err // the answer won the race; the Conn is closed all the same
		}
		return fmt.Errorf("%w: %w", ErrNoReply, ctx.Err())
	}
	if !answered(err) {
		c.abort()
		return fmt.Errorf("%w: %w", ErrNoReply, err)
	}
	return err
}

// notFoundCodes are the libvirt errors that mean "no such object".
var notFoundCodes = map[libvirt.ErrorNumber]bool{
	libvirt.ErrNoDomain:      true, // VIR_ERR_NO_DOMAIN
	libvirt.ErrNoNetwork:     true, // VIR_ERR_NO_NETWORK
	libvirt.ErrNoNetworkPort: true, // VIR_ERR_NO_NETWORK_PORT
	libvirt.ErrDeviceMissing: true, // VIR_ERR_DEVICE_MISSING: no NIC with that MAC
}

// codeError is a libvirt error that also means one of this package's
// sentinels: errors.Is finds the sentinel, errors.As the libvirt.Error.
type codeError struct {
	sentinel error
	lerr     libvirt.Error
}

func (e codeError) Error() string   { return e.lerr.Message }
func (e codeError) Unwrap() []error { return []error{e.sentinel, e.lerr} }

// classify maps a libvirt error to ErrNotFound by its code; other errors
// pass through unchanged.
func classify(err error) error {
	var lerr libvirt.Error
	if errors.As(err, &lerr) && notFoundCodes[libvirt.ErrorNumber(lerr.Code)] {
		return codeError{sentinel: ErrNotFound, lerr: lerr}
	}
	return err
}

// hasCode reports whether err is a libvirt error with code.
func hasCode(err error, code libvirt.ErrorNumber) bool {
	var lerr libvirt.Error
	return errors.As(err, &lerr) && libvirt.ErrorNumber(lerr.Code) == code
}

// opError puts an operation and its object in front of err.
func opError(op, object string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("libvirt: %s %q: %w", op, object, classify(err))
}

// forEach runs f(0..n-1) with at most parallel calls at once and returns
// the first error, starting no more after one failed. Every f has
// returned when forEach does.
func forEach(n int, f func(i int) error) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		sem   = make(chan struct{}, parallel)
	)
	failed := func() bool { mu.Lock(); defer mu.Unlock(); return first != nil }
	for i := 0; i < n && !failed(); i++ {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := f(i); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return first
}

// Refused reports whether err is libvirt's own answer refusing the call
// (a libvirt error): the call was received and did not happen. Anything
// else (no reply, a closed connection, a context that ended before the
// call was sent) leaves the outcome to be observed.
func Refused(err error) bool {
	var lerr libvirt.Error
	return err != nil && errors.As(err, &lerr)
}

// Alive reports whether every connection of c is still open: false once
// the daemon went away (libvirtd restarted) or c was closed. A long-lived
// user (the daemon) checks it before a call and dials afresh, rather than
// spend the call on a dead socket.
func (c *Conn) Alive() bool {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return false
	}
	for _, k := range c.links() {
		select {
		case <-k.lv.Disconnected():
			return false
		default:
		}
	}
	return true
}

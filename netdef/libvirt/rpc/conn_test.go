package rpc

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	libvirt "github.com/digitalocean/go-libvirt"
)

// A fake libvirt daemon speaking just enough of the RPC protocol (packet
// framing, the handshake, replies and errors) to test what the real one
// cannot be made to do on demand: never answer, drop the connection
// mid-call. Behaviour against the real libvirtd is in rpc_lab_test.go.

// libvirt's remote procedure numbers used here (remote_protocol.x).
const (
	procConnectOpen           = 1
	procConnectClose          = 2
	procNetworkDestroy        = 42
	procNetworkLookupByName   = 46
	procAuthList              = 66
	procNetworkIsActive       = 152
	procConnectListAllNetwork = 283
	procConnectListAllDomains = 273
	procDomainGetXMLDesc      = 14
	procNetworkIsPersistent   = 153
)

// action is what the fake does with one call.
type action int

const (
	reply action = iota // send the payload (or the error)
	hang                // never answer
	drop                // close the connection
)

type answer struct {
	do      action
	payload []byte
	errCode uint32 // non-zero: an error reply with this code
	errMsg  string
}

type fakeDaemon struct {
	t      *testing.T
	ln     net.Listener
	handle func(proc uint32, payload []byte) answer

	mu    sync.Mutex
	procs []uint32 // every procedure called, in order
	uris  []string // URIs opened
	conns []net.Conn
	wg    sync.WaitGroup
}

// newFake listens on path; handle decides the answer to every call after
// the handshake (nil: an empty reply).
func newFake(t *testing.T, path string, handle func(proc uint32, payload []byte) answer) *fakeDaemon {
	t.Helper()
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeDaemon{t: t, ln: ln, handle: handle}
	f.wg.Add(1)
	go f.accept()
	t.Cleanup(f.stop)
	return f
}

func (f *fakeDaemon) accept() {
	defer f.wg.Done()
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.mu.Lock()
		f.conns = append(f.conns, c)
		f.mu.Unlock()
		f.wg.Add(1)
		go f.serve(c)
	}
}

func (f *fakeDaemon) stop() {
	f.ln.Close()
	f.mu.Lock()
	for _, c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}

func (f *fakeDaemon) calls() []uint32 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]uint32(nil), f.procs...)
}

func (f *fakeDaemon) serve(c net.Conn) {
	defer f.wg.Done()
	defer c.Close()
	r := bufio.NewReader(c)
	for {
		var hdr [28]byte // length + 6 header words
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return
		}
		n := binary.BigEndian.Uint32(hdr[0:4])
		payload := make([]byte, n-28)
		if _, err := io.ReadFull(r, payload); err != nil {
			return
		}
		proc := binary.BigEndian.Uint32(hdr[12:16])
		f.mu.Lock()
		f.procs = append(f.procs, proc)
		f.mu.Unlock()
		var a answer
		switch {
		case proc == procAuthList && f.handle == nil:
			a.payload = xdrU32(nil, 0) // no authentication
		case proc == procConnectOpen:
			// [3]byte padding (one XDR word), then the URI string.
			l := binary.BigEndian.Uint32(payload[4:8])
			f.mu.Lock()
			f.uris = append(f.uris, string(payload[8:8+l]))
			f.mu.Unlock()
			if f.handle != nil {
				a = f.handle(proc, payload)
			}
		case f.handle != nil:
			a = f.handle(proc, payload)
		}
		switch a.do {
		case hang:
			continue
		case drop:
			return
		}
		status := uint32(0)
		body := a.payload
		if a.errCode != 0 {
			// remote_error: code, domain, message (optional string),
			// level; go-libvirt reads no further.
			status = 1
			body = xdrU32(nil, a.errCode)
			body = xdrU32(body, 19) // VIR_FROM_NETWORK
			body = xdrU32(body, 1)
			body = xdrString(body, a.errMsg)
			body = xdrU32(body, 2) // VIR_ERR_ERROR
		}
		out := make([]byte, 28, 28+len(body))
		binary.BigEndian.PutUint32(out[0:4], uint32(28+len(body)))
		copy(out[4:20], hdr[4:20])                // program, version, procedure, type (fixed below)
		binary.BigEndian.PutUint32(out[16:20], 1) // REPLY
		copy(out[20:24], hdr[20:24])              // serial
		binary.BigEndian.PutUint32(out[24:28], status)
		out = append(out, body...)
		if _, err := c.Write(out); err != nil {
			return
		}
	}
}

func xdrU32(b []byte, v uint32) []byte { return binary.BigEndian.AppendUint32(b, v) }

func xdrString(b []byte, s string) []byte {
	b = xdrU32(b, uint32(len(s)))
	b = append(b, s...)
	for len(s)%4 != 0 {
		b, s = append(b, 0), s+"x"
	}
	return b
}

// network encodes a remote_nonnull_network.
func xdrNetwork(name string) []byte {
	b := xdrString(nil, name)
	return append(b, make([]byte, 16)...)
}

// defaultHandle answers the handshake and the calls DestroyNetwork makes
// for an active network; others get an empty reply.
func defaultHandle(proc uint32, _ []byte) answer {
	switch proc {
	case procAuthList:
		return answer{payload: xdrU32(nil, 0)}
	case procNetworkLookupByName:
		return answer{payload: xdrNetwork("default")}
	case procNetworkIsActive:
		return answer{payload: xdrU32(nil, 1)}
	}
	return answer{}
}

// withHandle overrides one procedure of defaultHandle.
func withHandle(proc uint32, a answer) func(uint32, []byte) answer {
	return func(p uint32, payload []byte) answer {
		if p == proc {
			return a
		}
		return defaultHandle(p, payload)
	}
}

// checkGoroutines fails the test if goroutines started after it was called
// are still running once the test's cleanups are done.
func checkGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<16)
				t.Errorf("%d goroutines left running (had %d):\n%s",
					runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
}

// monolithic starts a fake libvirtd in a fresh run directory.
func monolithic(t *testing.T, handle func(uint32, []byte) answer) (*fakeDaemon, string) {
	dir := t.TempDir()
	return newFake(t, filepath.Join(dir, monolithicSocket), handle), dir
}

func dial(t *testing.T, dir string) *Conn {
	t.Helper()
	c, err := Dial(context.Background(), WithRunDir(dir))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestDialNoSocket(t *testing.T) {
	checkGoroutines(t)
	_, err := Dial(context.Background(), WithRunDir(t.TempDir()))
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Dial with no socket: %v, want ErrUnavailable", err)
	}
}

func TestDialStaleSocket(t *testing.T) {
	checkGoroutines(t)
	dir := t.TempDir()
	ln, err := net.Listen("unix", filepath.Join(dir, monolithicSocket))
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close() // the socket file stays; connecting is refused
	_, err = Dial(context.Background(), WithRunDir(dir))
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Dial with a stale socket: %v, want ErrUnavailable", err)
	}
}

func TestDialHandshakeTimeout(t *testing.T) {
	checkGoroutines(t)
	_, dir := monolithic(t, withHandle(procAuthList, answer{do: hang}))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := Dial(ctx, WithRunDir(dir))
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Dial to a daemon that never answers: %v, want ErrUnavailable and DeadlineExceeded", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Dial took %v after a 100ms deadline", d)
	}
}

// A daemon that answers but refuses the connection is there: its error is
// libvirt's, not ErrUnavailable.
func TestDialRefused(t *testing.T) {
	checkGoroutines(t)
	_, dir := monolithic(t, withHandle(procConnectOpen, answer{errCode: uint32(libvirt.ErrAuthFailed), errMsg: "authentication failed"}))
	_, err := Dial(context.Background(), WithRunDir(dir))
	var lerr libvirt.Error
	if !errors.As(err, &lerr) || libvirt.ErrorNumber(lerr.Code) != libvirt.ErrAuthFailed {
		t.Fatalf("Dial refused: %v, want the libvirt error", err)
	}
	if errors.Is(err, ErrUnavailable) {
		t.Errorf("Dial refused: %v should not be ErrUnavailable", err)
	}
}

func TestURIs(t *testing.T) {
	checkGoroutines(t)
	t.Run("monolithic", func(t *testing.T) {
		f, dir := monolithic(t, defaultHandle)
		c := dial(t, dir)
		defer c.Close()
		if got := strings.Join(f.uris, " "); got != qemuURI {
			t.Errorf("opened %q, want %q", got, qemuURI)
		}
		if c.dom != c.net {
			t.Error("libvirtd: domains and networks should share one connection")
		}
	})
	t.Run("split", func(t *testing.T) {
		dir := t.TempDir()
		nf := newFake(t, filepath.Join(dir, networkSocket), defaultHandle)
		qf := newFake(t, filepath.Join(dir, qemuSocket), defaultHandle)
		c := dial(t, dir)
		defer c.Close()
		if got := strings.Join(nf.uris, " "); got != networkURI {
			t.Errorf("virtnetworkd: opened %q, want %q", got, networkURI)
		}
		if got := strings.Join(qf.uris, " "); got != qemuURI {
			t.Errorf("virtqemud: opened %q, want %q", got, qemuURI)
		}
		if err := c.DestroyNetwork(context.Background(), "default"); err != nil {
			t.Fatal(err)
		}
		for _, p := range qf.calls() {
			if p == procNetworkDestroy {
				t.Error("a network call went to virtqemud")
			}
		}
	})
	t.Run("split without virtqemud", func(t *testing.T) {
		dir := t.TempDir()
		newFake(t, filepath.Join(dir, networkSocket), defaultHandle)
		c := dial(t, dir)
		defer c.Close()
		if _, err := c.GuestNICs(context.Background(), "default"); !errors.Is(err, ErrUnavailable) {
			t.Errorf("GuestNICs without virtqemud: %v, want ErrUnavailable", err)
		}
		if err := c.SetLink(context.Background(), GuestNIC{DomainUUID: "11111111-2222-3333-4444-555555555555", XML: "<interface/>"}, true); !errors.Is(err, ErrUnavailable) {
			t.Errorf("SetLink without virtqemud: %v, want ErrUnavailable", err)
		}
		if err := c.DestroyNetwork(context.Background(), "default"); err != nil {
			t.Errorf("networks must still work: %v", err)
		}
	})
}

func TestCallTimeout(t *testing.T) {
	checkGoroutines(t)
	_, dir := monolithic(t, withHandle(procNetworkDestroy, answer{do: hang}))
	c := dial(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := c.DestroyNetwork(ctx, "default")
	if !errors.Is(err, ErrNoReply) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("DestroyNetwork, daemon silent: %v, want ErrNoReply and DeadlineExceeded", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("DestroyNetwork took %v after a 100ms deadline", d)
	}
	if !strings.Contains(err.Error(), `destroy network "default"`) {
		t.Errorf("error %q does not say what failed", err)
	}
	// The Conn is closed now: nothing more is sent.
	if _, err := c.Networks(context.Background(), false); !errors.Is(err, ErrClosed) {
		t.Errorf("call after ErrNoReply: %v, want ErrClosed", err)
	}
	start = time.Now()
	if err := c.Close(); err != nil {
		t.Errorf("Close after ErrNoReply: %v", err)
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("Close after ErrNoReply took %v; it should not wait for the daemon", d)
	}
}

// Every call in flight when one call's context ends shares its fate.
func TestTimeoutAbortsOtherCalls(t *testing.T) {
	checkGoroutines(t)
	f, dir := monolithic(t, withHandle(procNetworkDestroy, answer{do: hang}))
	c := dial(t, dir)
	defer c.Close()
	other := make(chan error, 1)
	go func() { other <- c.DestroyNetwork(context.Background(), "default") }()
	for !contains(f.calls(), procNetworkDestroy) { // the first call waits for its answer
		time.Sleep(5 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := c.DestroyNetwork(ctx, "default"); !errors.Is(err, ErrNoReply) {
		t.Fatalf("DestroyNetwork: %v, want ErrNoReply", err)
	}
	select {
	case err := <-other:
		if !errors.Is(err, ErrNoReply) {
			t.Errorf("the other call: %v, want ErrNoReply", err)
		}
	case <-time.After(time.Second):
		t.Fatal("the other call is still blocked")
	}
}

func TestConnectionDropped(t *testing.T) {
	checkGoroutines(t)
	_, dir := monolithic(t, withHandle(procNetworkDestroy, answer{do: drop}))
	c := dial(t, dir)
	defer c.Close()
	err := c.DestroyNetwork(context.Background(), "default")
	if !errors.Is(err, ErrNoReply) {
		t.Fatalf("DestroyNetwork, connection dropped: %v, want ErrNoReply", err)
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		t.Errorf("a dropped connection is not a context error: %v", err)
	}
}

func TestContextDoneBeforeCall(t *testing.T) {
	checkGoroutines(t)
	f, dir := monolithic(t, defaultHandle)
	c := dial(t, dir)
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	n := len(f.calls())
	err := c.DestroyNetwork(ctx, "default")
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrNoReply) {
		t.Fatalf("DestroyNetwork with a done context: %v, want Canceled and not ErrNoReply", err)
	}
	if len(f.calls()) != n {
		t.Error("a call was sent with a done context")
	}
	if err := c.DestroyNetwork(context.Background(), "default"); err != nil {
		t.Errorf("the Conn should still work: %v", err)
	}
}

func TestErrorCodes(t *testing.T) {
	checkGoroutines(t)
	for _, tc := range []struct {
		name    string
		handle  func(uint32, []byte) answer
		wantErr error // nil: success
	}{
		{"no network", withHandle(procNetworkLookupByName, answer{errCode: uint32(libvirt.ErrNoNetwork), errMsg: "Network not found: no network with matching name 'default'"}), ErrNotFound},
		{"inactive", withHandle(procNetworkIsActive, answer{payload: xdrU32(nil, 0)}), nil},
		{"became inactive", func(p uint32, b []byte) answer {
			if p == procNetworkDestroy {
				return answer{errCode: uint32(libvirt.ErrOperationInvalid), errMsg: "network 'default' is not active"}
			}
			return defaultHandle(p, b)
		}, errors.New("any error: IsActive still says 1")},
		{"other error", withHandle(procNetworkDestroy, answer{errCode: uint32(libvirt.ErrInternalError), errMsg: "boom"}), errors.New("boom")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, dir := monolithic(t, tc.handle)
			c := dial(t, dir)
			defer c.Close()
			err := c.DestroyNetwork(context.Background(), "default")
			switch {
			case tc.wantErr == nil && err != nil:
				t.Fatalf("DestroyNetwork: %v, want success", err)
			case tc.wantErr == nil:
				return
			case err == nil:
				t.Fatalf("DestroyNetwork succeeded, want %v", tc.wantErr)
			case tc.wantErr == ErrNotFound && !errors.Is(err, ErrNotFound):
				t.Fatalf("DestroyNetwork: %v, want ErrNotFound", err)
			}
			if errors.Is(err, ErrNoReply) {
				t.Errorf("libvirt's answer reported as no reply: %v", err)
			}
			var lerr libvirt.Error
			if !errors.As(err, &lerr) {
				t.Errorf("%v: the libvirt.Error is not reachable with errors.As", err)
			}
			if !strings.HasPrefix(err.Error(), `libvirt: destroy network "default": `) {
				t.Errorf("error %q does not say what failed", err)
			}
		})
	}
}

func TestCloseSaysGoodbye(t *testing.T) {
	checkGoroutines(t)
	f, dir := monolithic(t, defaultHandle)
	c := dial(t, dir)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	calls := f.calls()
	if len(calls) == 0 || calls[len(calls)-1] != procConnectClose {
		t.Errorf("calls %v: want a ConnectClose last", calls)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := c.DestroyNetwork(context.Background(), "default"); !errors.Is(err, ErrClosed) {
		t.Errorf("call after Close: %v, want ErrClosed", err)
	}
}

func TestCloseDaemonSilent(t *testing.T) {
	checkGoroutines(t)
	old := closeTimeout
	closeTimeout = 100 * time.Millisecond
	defer func() { closeTimeout = old }()
	_, dir := monolithic(t, withHandle(procConnectClose, answer{do: hang}))
	c := dial(t, dir)
	start := time.Now()
	err := c.Close()
	if !errors.Is(err, ErrNoReply) {
		t.Errorf("Close, daemon silent: %v, want ErrNoReply", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Close took %v with a 100ms bound", d)
	}
}

// Close while a call waits: the call ends with ErrNoReply.
func TestCloseDuringCall(t *testing.T) {
	checkGoroutines(t)
	old := closeTimeout
	closeTimeout = 100 * time.Millisecond
	defer func() { closeTimeout = old }()
	f, dir := monolithic(t, func(p uint32, b []byte) answer {
		if p == procNetworkDestroy || p == procConnectClose {
			return answer{do: hang}
		}
		return defaultHandle(p, b)
	})
	c := dial(t, dir)
	done := make(chan error, 1)
	go func() { done <- c.DestroyNetwork(context.Background(), "default") }()
	for !contains(f.calls(), procNetworkDestroy) {
		time.Sleep(5 * time.Millisecond)
	}
	c.Close()
	select {
	case err := <-done:
		if !errors.Is(err, ErrNoReply) {
			t.Errorf("call cut by Close: %v, want ErrNoReply", err)
		}
	case <-time.After(100 * time.Millisecond):
		t.Error("the call is still blocked after Close")
	}
}

// Objects that vanish between the list and the read are left out, not
// reported as failures.
func TestVanishedObjectsSkipped(t *testing.T) {
	checkGoroutines(t)
	_, dir := monolithic(t, func(p uint32, b []byte) answer {
		switch p {
		case procConnectListAllDomains:
			// one domain {name, uuid, id}, then ret
			d := append(xdrString(xdrU32(nil, 1), "gone"), make([]byte, 16)...)
			return answer{payload: xdrU32(xdrU32(d, 7), 1)}
		case procDomainGetXMLDesc:
			return answer{errCode: uint32(libvirt.ErrNoDomain), errMsg: "Domain not found"}
		case procConnectListAllNetwork:
			return answer{payload: xdrU32(append(xdrU32(nil, 1), xdrNetwork("gone")...), 1)}
		case procNetworkIsActive, procNetworkIsPersistent:
			return answer{errCode: uint32(libvirt.ErrNoNetwork), errMsg: "Network not found"}
		}
		return defaultHandle(p, b)
	})
	c := dial(t, dir)
	defer c.Close()
	if nics, err := c.GuestNICs(context.Background(), "default"); err != nil || len(nics) != 0 {
		t.Errorf("GuestNICs with a vanished domain: %+v, %v; want none, no error", nics, err)
	}
	if nets, err := c.Networks(context.Background(), true); err != nil || len(nets) != 0 {
		t.Errorf("Networks with a vanished network: %+v, %v; want none, no error", nets, err)
	}
	if _, err := c.Network(context.Background(), "gone", true); !errors.Is(err, ErrNotFound) {
		t.Errorf("Network of a vanishing network: %v, want ErrNotFound", err)
	}
}

func contains(s []uint32, v uint32) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func TestRefused(t *testing.T) {
	if Refused(nil) || Refused(ErrNoReply) || Refused(ErrClosed) || Refused(context.Canceled) {
		t.Fatal("a non-answer counted as a refusal")
	}
	if !Refused(opError("create network", "x", libvirt.Error{Code: 9, Message: "operation failed"})) {
		t.Fatal("libvirt's own error not counted as a refusal")
	}
}

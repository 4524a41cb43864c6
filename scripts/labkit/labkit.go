// Package labkit gives Go tests that run inside the lab (scripts/lab run)
// uplinks and guests. It drives scripts/lab-lib.sh, so the shell demo and
// the tests build the same things the same way.
package labkit

import (
	"bytes"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Require stops a test that is not running inside the lab: under CI it
// fails (a lab test must never silently skip there), elsewhere it skips.
func Require(t testing.TB) {
	t.Helper()
	if os.Getenv("LAB") == "1" {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatal("lab test outside the lab: run it through scripts/lab run")
	}
	t.Skip("not inside the lab (run: scripts/lab run -- go test -tags lab ./...)")
}

// libPath is scripts/lab-lib.sh, found from this file's location.
func libPath() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(filepath.Dir(file)), "lab-lib.sh")
}

// Run runs a command and returns its stdout; a failure fails the test.
func Run(t testing.TB, argv ...string) string {
	t.Helper()
	out, err := Try(argv...)
	if err != nil {
		t.Fatalf("%s: %v", strings.Join(argv, " "), err)
	}
	return out
}

// Try runs a command and returns stdout, or an error carrying stderr.
func Try(argv ...string) (string, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), &cmdError{err: err, stderr: strings.TrimSpace(errb.String())}
	}
	return out.String(), nil
}

type cmdError struct {
	err    error
	stderr string
}

func (e *cmdError) Error() string { return e.err.Error() + ": " + e.stderr }

// lib runs a lab-lib.sh function.
func lib(t testing.TB, fn string, args ...string) string {
	t.Helper()
	script := ". " + libPath() + " && " + fn + ` "$@"`
	return Run(t, append([]string{"bash", "-c", script, "lab"}, args...)...)
}

// Uplink is a veth in the lab host whose far end is in a router namespace.
type Uplink struct {
	Name   string // the host-side interface
	Router string // the router's namespace
}

// NewUplink makes an uplink; routerCIDR ("" for none) addresses the far end.
func NewUplink(t testing.TB, name, routerCIDR string) *Uplink {
	t.Helper()
	lib(t, "lab_uplink", name, routerCIDR)
	t.Cleanup(func() { exec.Command("bash", "-c", ". "+libPath()+" && lab_uplink_del "+name).Run() })
	return &Uplink{Name: name, Router: "rt-" + name}
}

// Guest is a namespace plugged into a bridge, running a DHCP client.
type Guest struct {
	Name string
}

// NewGuest plugs a guest into bridge.
func NewGuest(t testing.TB, name, bridge string) *Guest {
	t.Helper()
	lib(t, "lab_guest", name, bridge)
	t.Cleanup(func() { exec.Command("bash", "-c", ". "+libPath()+" && lab_guest_del "+name).Run() })
	return &Guest{Name: name}
}

// Addrs lists the guest's global addresses of both families.
func (g *Guest) Addrs() []netip.Prefix {
	out, _ := Try("ip", "-n", g.Name, "-o", "addr", "show", "dev", g.Name, "scope", "global")
	var addrs []netip.Prefix
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 4 {
			if p, err := netip.ParsePrefix(f[3]); err == nil {
				addrs = append(addrs, p)
			}
		}
	}
	return addrs
}

// WaitAddr waits until the guest has an address inside prefix.
func (g *Guest) WaitAddr(t testing.TB, prefix netip.Prefix, timeout time.Duration) netip.Addr {
	t.Helper()
	a, ok := g.PollAddr(prefix, timeout)
	if !ok {
		t.Fatalf("guest %s got no address in %s within %v (has %v)", g.Name, prefix, timeout, g.Addrs())
	}
	return a
}

// PollAddr is WaitAddr without a test: for timing loops.
func (g *Guest) PollAddr(prefix netip.Prefix, timeout time.Duration) (netip.Addr, bool) {
	deadline := time.Now().Add(timeout)
	for {
		for _, a := range g.Addrs() {
			if prefix.Contains(a.Addr()) {
				return a.Addr(), true
			}
		}
		if time.Now().After(deadline) {
			return netip.Addr{}, false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Ping sends one echo request from the guest.
func (g *Guest) Ping(t testing.TB, addr netip.Addr) error {
	t.Helper()
	_, err := Try("ip", "netns", "exec", g.Name, "ping", "-c", "1", "-W", "2", addr.String())
	return err
}

// Package labkit gives Go tests that run inside the lab (scripts/lab run)
// uplinks, guests and libvirt's default network, and small helpers to run
// commands. Tests that use it carry the build tag lab and run as
//
//	scripts/lab run [--default-net] -- go test -tags lab -p 1 ./...
//
// Uplinks and guests are built by scripts/lab-lib.sh, so the shell demo and
// the tests build the same things the same way. Everything a helper creates
// is removed by t.Cleanup; whatever a failed cleanup leaves dies with the lab.
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

// Require stops a test that is not running inside the lab. Under CI (CI set
// to anything but "", "0" or "false") it fails, so that lab tests can never
// pass there by skipping; elsewhere it skips.
func Require(t testing.TB) {
	t.Helper()
	if os.Getenv("LAB") == "1" {
		return
	}
	switch os.Getenv("CI") {
	case "", "0", "false":
		t.Skip("not inside the lab (run: scripts/lab run -- go test -tags lab ./...)")
	default:
		t.Fatal("lab test outside the lab under CI: run it through scripts/lab run")
	}
}

// scriptsDir is the scripts directory, found from this file's location.
func scriptsDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

func libPath() string { return filepath.Join(scriptsDir(), "lab-lib.sh") }

// Run runs a command and returns its stdout; a failure fails the test with
// the command's stderr.
func Run(t testing.TB, argv ...string) string {
	t.Helper()
	out, err := Try(argv...)
	if err != nil {
		t.Fatalf("%s: %v", strings.Join(argv, " "), err)
	}
	return out
}

// Try runs a command and returns its stdout, or an error carrying its stderr.
func Try(argv ...string) (string, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), &CmdError{Err: err, Stderr: strings.TrimSpace(errb.String())}
	}
	return out.String(), nil
}

// CmdError is a failed command: how it failed, and what it said.
type CmdError struct {
	Err    error
	Stderr string
}

func (e *CmdError) Error() string { return e.Err.Error() + ": " + e.Stderr }
func (e *CmdError) Unwrap() error { return e.Err }

// lib runs a function of lab-lib.sh.
func lib(t testing.TB, fn string, args ...string) string {
	t.Helper()
	return Run(t, append([]string{"bash", "-c", `. "$0" && ` + fn + ` "$@"`, libPath()}, args...)...)
}

// libCleanup runs a lab-lib.sh function at cleanup, reporting (not
// failing on) an error.
func libCleanup(t testing.TB, fn string, args ...string) {
	t.Cleanup(func() {
		argv := append([]string{"bash", "-c", `. "$0" && ` + fn + ` "$@"`, libPath()}, args...)
		if _, err := Try(argv...); err != nil {
			t.Logf("cleanup %s %v: %v", fn, args, err)
		}
	})
}

// Uplink is a veth in the lab host whose far end is in a router namespace:
// the host's side of a LAN, a hotspot or a VPN.
type Uplink struct {
	Name   string // the host-side interface, left unaddressed and up
	Router string // the router's namespace, whose interface is also named Router
}

// NewUplink makes an uplink. routerCIDR ("" for none) addresses the router's
// end, e.g. "192.168.122.1/24" for a hotel LAN on libvirt's default range.
// The host side gets an address from the test: ip addr add, or NMStatic.
func NewUplink(t testing.TB, name, routerCIDR string) *Uplink {
	t.Helper()
	lib(t, "lab_uplink", name, routerCIDR)
	libCleanup(t, "lab_uplink_del", name)
	return &Uplink{Name: name, Router: "rt-" + name}
}

// NMStatic hands the uplink to NetworkManager and activates a connection
// named after it with the static address hostCIDR and IPv6 disabled;
// settings are further nmcli property/value pairs (e.g. "ipv4.dns",
// "10.0.0.1"). The connection is deleted with the uplink.
func (u *Uplink) NMStatic(t testing.TB, hostCIDR string, settings ...string) {
	t.Helper()
	lib(t, "lab_nm_static", append([]string{u.Name, hostCIDR}, settings...)...)
}

// Exec runs a command in the router's namespace.
func (u *Uplink) Exec(t testing.TB, argv ...string) string {
	t.Helper()
	return Run(t, append([]string{"ip", "netns", "exec", u.Router}, argv...)...)
}

// Guest is a namespace plugged into a bridge, running a DHCPv4 client and
// taking SLAAC addresses. Its interface is named like the guest; the bridge
// port in the lab host is "vg-" + Name.
type Guest struct {
	Name string
}

// Port is the guest's bridge port in the lab host.
func (g *Guest) Port() string { return "vg-" + g.Name }

// NewGuest plugs a guest into bridge. The DHCP client is dhcpcd, which asks
// again when its carrier comes back; set LAB_DHCP_CLIENT=dhclient
// (t.Setenv) for ISC dhclient, which does not. The client starts once the
// bridge forwards the port (STP bridges hold a new port for 4 s).
func NewGuest(t testing.TB, name, bridge string) *Guest {
	t.Helper()
	lib(t, "lab_guest", name, bridge)
	libCleanup(t, "lab_guest_del", name)
	return &Guest{Name: name}
}

// Exec runs a command in the guest.
func (g *Guest) Exec(t testing.TB, argv ...string) string {
	t.Helper()
	return Run(t, append([]string{"ip", "netns", "exec", g.Name}, argv...)...)
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

// WaitAddr waits until the guest has an address inside prefix and returns
// it; it fails the test after timeout. A lease on libvirt's default network
// takes about 7 s: 4 s of STP on the new port, 3 s of dnsmasq's ping check.
func (g *Guest) WaitAddr(t testing.TB, prefix netip.Prefix, timeout time.Duration) netip.Addr {
	t.Helper()
	a, ok := g.PollAddr(prefix, timeout)
	if !ok {
		log, _ := os.ReadFile(filepath.Join(os.Getenv("LAB_LOGDIR"), "dhcp-"+g.Name+".log"))
		t.Fatalf("guest %s got no address in %s within %v (has %v); its DHCP client said:\n%s",
			g.Name, prefix, timeout, g.Addrs(), log)
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

// Ping sends one echo request from the guest and waits up to 2 s for the
// reply.
func (g *Guest) Ping(t testing.TB, addr netip.Addr) error {
	t.Helper()
	_, err := Try("ip", "netns", "exec", g.Name, "ping", "-c", "1", "-W", "2", addr.String())
	return err
}

// DefaultNetwork makes sure libvirt's default network (virbr0,
// 192.168.122.1/24, NAT, DHCP: scripts/lab.d/default.xml) is running, as
// `scripts/lab run --default-net` leaves it. What it had to do it undoes at
// cleanup.
func DefaultNetwork(t testing.TB) {
	t.Helper()
	info, err := Try("virsh", "net-info", "default")
	switch {
	case err != nil:
		Run(t, "virsh", "net-define", filepath.Join(scriptsDir(), "lab.d", "default.xml"))
		t.Cleanup(func() { Try("virsh", "net-undefine", "default") })
		fallthrough
	case !NetworkActive(info):
		Run(t, "virsh", "net-start", "default")
		t.Cleanup(func() { Try("virsh", "net-destroy", "default") })
	}
}

// NetworkActive reads "virsh net-info" output: is the network running?
func NetworkActive(netInfo string) bool {
	for _, line := range strings.Split(netInfo, "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == "Active:" {
			return f[1] == "yes"
		}
	}
	return false
}

// WriteFile writes a file for a test (a dispatcher hook, a network XML) and
// removes it at cleanup.
func WriteFile(t testing.TB, path string, data string, perm os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, perm); err != nil { // not masked by the umask
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(path) })
}

// Eventually polls cond every 20 ms until it holds, failing the test after
// timeout with what it waited for.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

//go:build lab

// Package e2e holds end-to-end tests that run the vnetguard binary against
// real NetworkManager, libvirtd, libvirt-dbus and dnsmasq inside the lab
// (scripts/lab run). Each test makes its own networks, guests and uplinks
// with distinct names and subnets and removes them afterwards.
package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vnetguard/vnetguard/scripts/labkit"
)

// vnetguardBin is the binary under test: a fresh build of this tree, or,
// with VNETGUARD_BIN set, that binary as it is (an installed one:
// VNETGUARD_BIN=/usr/bin/vnetguard after the .deb was installed in a lab
// started with --dpkg; scripts/test-all does that). Every test that runs
// vnetguard, starts the daemon or links a dispatcher hook uses it.
var vnetguardBin string

// installedBin tells that vnetguardBin came from VNETGUARD_BIN rather than
// from a build.
var installedBin bool

func TestMain(m *testing.M) {
	if bin := os.Getenv("VNETGUARD_BIN"); bin != "" {
		fi, err := os.Stat(bin)
		if !filepath.IsAbs(bin) || err != nil || !fi.Mode().IsRegular() || fi.Mode()&0o111 == 0 {
			fmt.Fprintf(os.Stderr, "VNETGUARD_BIN=%s: not an absolute path to an executable file (%v)\n", bin, err)
			os.Exit(2)
		}
		vnetguardBin, installedBin = bin, true
		version, _ := exec.Command(bin, "--version").Output()
		fmt.Fprintf(os.Stderr, "e2e: testing %s (%s), not a build of this tree\n", bin, strings.TrimSpace(string(version)))
		// Its package's hook links would run for every NetworkManager
		// event of every test (NetworkManager also activates a veth that
		// a test addresses by hand), racing the daemon tests' daemon:
		// hidden, as in a lab without the package, but from tests that
		// ask for them (useInstalledHooks).
		if os.Getenv("LAB") == "1" && sameFile(installedHooks+"/90-vnetguard", bin) && sameFile(installedHooks+"/pre-up.d/90-vnetguard", bin) {
			if err := hideInstalledHooks(); err != nil {
				fmt.Fprintf(os.Stderr, "hide %s: %v\n", installedHooks, err)
				os.Exit(2)
			}
			fmt.Fprintf(os.Stderr, "e2e: its hook links in %s are hidden from NetworkManager but in tests that ask for them\n", installedHooks)
		}
		code := m.Run()
		if hooksHidden {
			showInstalledHooks()
		}
		os.Exit(code)
	}
	dir, err := os.MkdirTemp("", "vnetguard-e2e")
	if err != nil {
		panic(err)
	}
	vnetguardBin = filepath.Join(dir, "vnetguard")
	build := exec.Command("go", "build", "-o", vnetguardBin, "github.com/vnetguard/vnetguard/cmd/vnetguard")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build vnetguard:", err)
		os.Exit(2)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result of one vnetguard run.
type result struct {
	code           int
	stdout, stderr string
}

// vnetguard runs the binary with a per-test cache and state directory.
func vnetguard(t testing.TB, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(vnetguardBin, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run vnetguard %v: %v", args, err)
	}
	t.Logf("vnetguard %s -> %d\n%s%s", strings.Join(args, " "), code, out.String(), errb.String())
	return result{code, out.String(), errb.String()}
}

// dirs gives each test its own remembered state, so tests don't see each
// other's choices.
type dirs struct{ cache, state string }

func newDirs(t testing.TB) dirs {
	d := t.TempDir()
	return dirs{filepath.Join(d, "cache"), filepath.Join(d, "state")}
}

func (d dirs) flags(args ...string) []string {
	return append(args, "--cache-dir", d.cache, "--state-dir", d.state)
}

func virsh(t testing.TB, args ...string) string {
	t.Helper()
	return labkit.Run(t, append([]string{"virsh", "-q", "-c", "qemu:///system"}, args...)...)
}

// netSpec describes a test network.
type netSpec struct {
	name, bridge string
	v4           string // e.g. "192.168.150" (a /24, .1 on the bridge)
	v6           string // e.g. "fd11:2233:4455:1" (a /64, ::1 on the bridge)
	policy       string // renumber, destroy, warn or "" for none
}

func (s netSpec) xml() string {
	var b strings.Builder
	fmt.Fprintf(&b, "<network>\n  <name>%s</name>\n", s.name)
	if s.policy != "" {
		fmt.Fprintf(&b, "  <metadata>\n    <vnetguard:policy xmlns:vnetguard=\"urn:x-vnetguard:policy:1\" on-conflict=\"%s\"/>\n  </metadata>\n", s.policy)
	}
	fmt.Fprintf(&b, "  <forward mode='nat'/>\n  <bridge name='%s' stp='on' delay='0'/>\n", s.bridge)
	if s.v4 != "" {
		fmt.Fprintf(&b, "  <ip address='%[1]s.1' netmask='255.255.255.0'>\n    <dhcp>\n      <range start='%[1]s.100' end='%[1]s.200'/>\n    </dhcp>\n  </ip>\n", s.v4)
	}
	if s.v6 != "" {
		fmt.Fprintf(&b, "  <ip family='ipv6' address='%s::1' prefix='64'/>\n", s.v6)
	}
	b.WriteString("</network>\n")
	return b.String()
}

// defineNetwork defines and starts a libvirt network, and removes it when
// the test ends.
func defineNetwork(t testing.TB, s netSpec) {
	t.Helper()
	f := filepath.Join(t.TempDir(), s.name+".xml")
	if err := os.WriteFile(f, []byte(s.xml()), 0o644); err != nil {
		t.Fatal(err)
	}
	virsh(t, "net-define", f)
	t.Cleanup(func() {
		exec.Command("virsh", "-c", "qemu:///system", "net-destroy", s.name).Run()
		exec.Command("virsh", "-c", "qemu:///system", "net-undefine", s.name).Run()
	})
	virsh(t, "net-start", s.name)
}

// networkStatus is the JSON of vnetguard status for one network.
type networkStatus struct {
	Name           string
	Active         bool
	Policy         string
	DefinedSubnets []netip.Prefix `json:"defined_subnets"`
	LiveSubnets    []netip.Prefix `json:"live_subnets"`
	Conflicts      []json.RawMessage
	LastAction     *struct {
		Action string
		Moves  []string
	} `json:"last_action"`
	Error string
}

func status(t testing.TB, d dirs, name string) networkStatus {
	t.Helper()
	return statusOf(t, nil, d.flags("status", "--json"), name)
}

// statusOf runs `vnetguard ARGS` (a status --json) with env and returns
// the named network's entry.
func statusOf(t testing.TB, env, args []string, name string) networkStatus {
	t.Helper()
	r := vnetguard(t, env, args...)
	if r.code == 2 {
		t.Fatalf("status failed: %s", r.stderr)
	}
	var all []networkStatus
	if err := json.Unmarshal([]byte(r.stdout), &all); err != nil {
		t.Fatalf("status --json: %v\n%s", err, r.stdout)
	}
	for _, s := range all {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("network %s not in status: %s", name, r.stdout)
	return networkStatus{}
}

func liveSubnet(t testing.TB, d dirs, name string, v4 bool) netip.Prefix {
	t.Helper()
	for _, p := range status(t, d, name).LiveSubnets {
		if p.Addr().Is4() == v4 {
			return p
		}
	}
	t.Fatalf("network %s has no live subnet of that family", name)
	return netip.Prefix{}
}

// hostAddr is the address with host part .1 / ::1 in p.
func bridgeAddr(p netip.Prefix) netip.Addr {
	return p.Addr().Next()
}

func eventually(t testing.TB, timeout time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if ok() {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out after %v waiting for %s", timeout, what)
}

func writeTemp(t testing.TB, content string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "net.xml")
	if err := os.WriteFile(f, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

func readULA(t testing.TB, d dirs) netip.Prefix {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(d.state, "ula-prefix"))
	if err != nil {
		t.Fatal(err)
	}
	return netip.MustParsePrefix(strings.TrimSpace(string(b)))
}

// privateBus starts a D-Bus daemon with the system bus's policy but no
// activatable services: a system on which libvirt-dbus is not installed.
func privateBus(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	conf := filepath.Join(dir, "bus.conf")
	sock := filepath.Join(dir, "bus.sock")
	os.WriteFile(conf, []byte(`<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=`+sock+`</listen>
  <auth>EXTERNAL</auth>
  <policy context="default"><allow send_destination="*" eavesdrop="true"/><allow eavesdrop="true"/><allow own="*"/></policy>
</busconfig>
`), 0o644)
	cmd := exec.Command("dbus-daemon", "--config-file="+conf, "--nofork", "--nopidfile")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	eventually(t, 5*time.Second, "private bus socket", func() bool { _, err := os.Stat(sock); return err == nil })
	return "unix:path=" + sock
}

// stopLibvirtd kills libvirtd; startLibvirtd brings it back and waits
// until it answers, so later tests find it as before.
func stopLibvirtd(t testing.TB) {
	t.Helper()
	exec.Command("pkill", "-x", "libvirtd").Run()
	eventually(t, 10*time.Second, "libvirtd to exit", func() bool { return exec.Command("pgrep", "-x", "libvirtd").Run() != nil })
}

func startLibvirtd(t testing.TB) {
	t.Helper()
	labkit.Run(t, "libvirtd", "-d")
	eventually(t, 20*time.Second, "libvirtd to answer", func() bool {
		return exec.Command("virsh", "-c", "qemu:///system", "net-list").Run() == nil
	})
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// clashingUplink makes an uplink and puts cidr on it with plain ip, as a
// user or a VPN client outside NetworkManager would.
func clashingUplink(t testing.TB, name, cidr string) {
	t.Helper()
	labkit.NewUplink(t, name, "")
	labkit.Run(t, "ip", "addr", "add", cidr, "dev", name)
}

// installedHooks is where the package puts the dispatcher hook's links
// (90-vnetguard and pre-up.d/90-vnetguard, to ../bin/vnetguard).
const installedHooks = "/usr/lib/NetworkManager/dispatcher.d"

// hooksHidden: an empty tmpfs of the lab's lies over installedHooks (with
// an installed binary under test, see TestMain).
var hooksHidden bool

func hideInstalledHooks() error {
	if err := syscall.Mount("lab-hooks-hidden", installedHooks, "tmpfs", 0, "mode=755"); err != nil {
		return err
	}
	hooksHidden = true
	for _, d := range []string{"pre-up.d", "pre-down.d", "no-wait.d"} {
		os.Mkdir(filepath.Join(installedHooks, d), 0o755)
	}
	return nil
}

func showInstalledHooks() error {
	if err := syscall.Unmount(installedHooks, 0); err != nil {
		return err
	}
	hooksHidden = false
	return nil
}

// useInstalledHooks shows NetworkManager's dispatcher the installed hook
// links until the test ends (they are hidden from the others).
func useInstalledHooks(t testing.TB) {
	t.Helper()
	if !hooksHidden {
		return
	}
	if err := showInstalledHooks(); err != nil {
		t.Fatalf("show the installed hooks in %s: %v", installedHooks, err)
	}
	t.Cleanup(func() {
		if err := hideInstalledHooks(); err != nil {
			t.Errorf("hide the installed hooks in %s again: %v", installedHooks, err)
		}
	})
}

// dispatcherHook has NetworkManager's dispatcher run the binary under test
// as the hook at path, a script under /etc/NetworkManager/dispatcher.d
// (which the lab keeps empty): a link to vnetguardBin, removed at cleanup.
// When the binary under test is an installed one (VNETGUARD_BIN) whose
// package put the same link under /usr/lib/NetworkManager/dispatcher.d,
// that installed link is what runs: it is shown to the dispatcher for the
// test, nothing is added (a link in /etc would shadow it), and it must
// resolve to the binary.
func dispatcherHook(t *testing.T, path string) {
	t.Helper()
	if rel, err := filepath.Rel("/etc/NetworkManager/dispatcher.d", path); installedBin && err == nil && !strings.HasPrefix(rel, "..") {
		useInstalledHooks(t)
		link := filepath.Join(installedHooks, rel)
		if !sameFile(link, vnetguardBin) {
			t.Fatalf("testing the installed %s, but %s does not resolve to it", vnetguardBin, link)
		}
		if _, err := os.Lstat(path); err == nil {
			t.Fatalf("%s exists and would shadow the installed %s", path, link)
		}
		t.Logf("the dispatcher runs the installed %s", link)
		return
	}
	if err := os.Symlink(vnetguardBin, path); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(path) })
}

// sameFile tells whether a and b (links followed) are one file.
func sameFile(a, b string) bool {
	fa, err1 := os.Stat(a)
	fb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(fa, fb)
}

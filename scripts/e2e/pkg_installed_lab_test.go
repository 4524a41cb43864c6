//go:build lab

package e2e

import (
	"archive/tar"
	"bytes"
	"io"
	"net"
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

// Issue 11: "after installing the .deb in the lab, the hook and daemon lab
// tests pass against the installed files". scripts/test-all starts a lab
// with a package database of its own (scripts/lab run --dpkg), installs the
// .deb there with dpkg -i (lab_dpkg_install, scripts/lab-lib.sh, which
// first checks that everything dpkg writes is one of the lab's private
// mounts), and runs the Hook and Daemon tests with
// VNETGUARD_BIN=/usr/bin/vnetguard, and these, which check the installed
// files themselves: where the package says, the hook links as
// NetworkManager finds them, the daemon as its unit starts it.
// VNETGUARD_DEB names the .deb that was installed. With VNETGUARD_BIN,
// TestMain hides the package's hook links from NetworkManager; these tests
// show them again (requireDpkgInstalled).

// The installed paths.
const (
	installedBinary = "/usr/bin/vnetguard"
	installedUnit   = "/usr/lib/systemd/system/vnetguard.service"
)

// requireDpkgInstalled skips the test unless vnetguard is installed with
// dpkg in this lab's own package database.
func requireDpkgInstalled(t *testing.T) {
	t.Helper()
	labkit.Require(t)
	if os.Getenv("LAB_DPKG") != "1" {
		t.Skip("needs a lab with its own package database and vnetguard installed there " +
			"(scripts/lab run --dpkg, then lab_dpkg_install from scripts/lab-lib.sh; scripts/test-all does it)")
	}
	if st, _ := exec.Command("dpkg-query", "-W", "-f=${db:Status-Abbrev}", "vnetguard").Output(); strings.TrimSpace(string(st)) != "ii" {
		t.Skipf("vnetguard is not installed in this lab's package database (status %q)", st)
	}
	// The package's hook links, as NetworkManager would see them.
	useInstalledHooks(t)
}

func dpkgQuery(t *testing.T, field string) string {
	t.Helper()
	return labkit.Run(t, "dpkg-query", "-W", "-f=${"+field+"}", "vnetguard")
}

// The installed files are where the package says: dpkg's record of them
// matches the disk (dpkg --verify: every file's checksum), each entry of
// the .deb is on disk with its type, mode, size and link target, the
// configuration is a conffile, both hook links resolve to the binary, which
// is the packaged version, and the post-install script enabled the unit.
func TestPkgInstalledFiles(t *testing.T) {
	requireDpkgInstalled(t)
	if out, err := exec.Command("dpkg", "--verify", "vnetguard").CombinedOutput(); err != nil || len(out) != 0 {
		t.Errorf("dpkg --verify vnetguard: %v\n%s", err, out)
	}
	version := dpkgQuery(t, "Version")
	listed := map[string]bool{}
	for _, p := range strings.Split(dpkgQuery(t, "db-fsys:Files"), "\n") {
		if p = strings.TrimSpace(p); p != "" {
			listed[p] = true
		}
	}
	if deb := os.Getenv("VNETGUARD_DEB"); deb != "" {
		if v := strings.TrimSpace(labkit.Run(t, "dpkg-deb", "-f", deb, "Version")); v != version {
			t.Fatalf("installed %s, but VNETGUARD_DEB=%s is %s", version, deb, v)
		}
		n := checkAgainstDeb(t, deb, listed)
		t.Logf("%d entries of %s are in place", n, filepath.Base(deb))
	} else {
		for p := range listed {
			if _, err := os.Lstat(p); err != nil {
				t.Errorf("dpkg lists %s: %v", p, err)
			}
		}
		t.Logf("no VNETGUARD_DEB: checked the %d paths dpkg lists", len(listed))
	}

	if !strings.Contains(dpkgQuery(t, "Conffiles"), "/etc/vnetguard/vnetguard.conf ") {
		t.Errorf("/etc/vnetguard/vnetguard.conf is not a conffile")
	}
	for _, link := range []string{installedHooks + "/90-vnetguard", installedHooks + "/pre-up.d/90-vnetguard"} {
		if dst, err := filepath.EvalSymlinks(link); err != nil || dst != installedBinary {
			t.Errorf("%s -> %q, %v; want %s", link, dst, err, installedBinary)
		}
	}
	// Started by the pre-up.d link's name, with no command: the hook.
	if out, err := exec.Command(installedHooks+"/pre-up.d/90-vnetguard", "lo", "hostname").CombinedOutput(); err != nil || len(out) != 0 {
		t.Errorf("the installed pre-up.d link is not taken for the hook: %v: %s", err, out)
	}
	upstream, _, _ := strings.Cut(version, "-")
	if out := labkit.Run(t, installedBinary, "--version"); strings.TrimSpace(out) != "vnetguard "+upstream {
		t.Errorf("%s --version says %q, the package is %s", installedBinary, out, version)
	}
	// deb-systemd-helper, from the post-install script (which started
	// nothing: the lab has no /run/systemd/system, so to it a chroot).
	wants := "/etc/systemd/system/multi-user.target.wants/vnetguard.service"
	if dst, err := filepath.EvalSymlinks(wants); err != nil || dst != installedUnit {
		t.Errorf("%s -> %q, %v; want %s (deb-systemd-helper enable)", wants, dst, err, installedUnit)
	}
}

// checkAgainstDeb compares every entry of the .deb with what is on disk and
// with dpkg's list of the package's files; it returns how many it checked.
func checkAgainstDeb(t *testing.T, deb string, listed map[string]bool) int {
	t.Helper()
	data, err := exec.Command("dpkg-deb", "--fsys-tarfile", deb).Output()
	if err != nil {
		t.Fatalf("dpkg-deb --fsys-tarfile %s: %v", deb, err)
	}
	tr := tar.NewReader(bytes.NewReader(data))
	n := 0
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Clean("/" + strings.TrimPrefix(h.Name, "./"))
		if p == "/" {
			continue
		}
		n++
		if !listed[p] {
			t.Errorf("%s is in the .deb but not in dpkg's list of vnetguard's files", p)
		}
		fi, err := os.Lstat(p)
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if !fi.IsDir() {
				t.Errorf("%s is a %v, the .deb has a directory", p, fi.Mode().Type())
			}
		case tar.TypeSymlink:
			if dst, err := os.Readlink(p); err != nil || dst != h.Linkname {
				t.Errorf("%s -> %q, %v; the .deb has -> %q", p, dst, err, h.Linkname)
			}
		case tar.TypeReg:
			if !fi.Mode().IsRegular() || fi.Size() != h.Size || fi.Mode().Perm() != os.FileMode(h.Mode).Perm() {
				t.Errorf("%s is %v, %d bytes; the .deb has %v, %d bytes", p, fi.Mode(), fi.Size(), os.FileMode(h.Mode).Perm(), h.Size)
			}
		default:
			t.Errorf("%s: unexpected entry type %q in the .deb", p, h.Typeflag)
		}
	}
	if n == 0 {
		t.Fatalf("%s holds nothing", deb)
	}
	return n
}

// The installed hook links as NetworkManager finds them, with no link of a
// test's in /etc/NetworkManager/dispatcher.d and no daemon: pre-up.d's
// moves a clashing network before `nmcli connection up` returns, and
// dispatcher.d's moves one that a reapplied connection clashes with.
func TestPkgInstalledHookLinks(t *testing.T) {
	requireDpkgInstalled(t)
	for _, hook := range []string{"/etc/NetworkManager/dispatcher.d/90-vnetguard", "/etc/NetworkManager/dispatcher.d/pre-up.d/90-vnetguard"} {
		if installedBin {
			// As a hook test asks for its hook, with the installed
			// binary under test: the installed link, checked.
			dispatcherHook(t, hook)
		} else if _, err := os.Lstat(hook); err == nil {
			t.Fatalf("%s exists: it would run instead of the installed hook", hook)
		}
	}

	t.Run("pre-up.d at connection up", func(t *testing.T) {
		spec := netSpec{name: "ia", bridge: "vbr-ia", v4: "192.168.196", policy: "renumber"}
		defineNetwork(t, spec)
		old := netip.MustParsePrefix("192.168.196.0/24")
		nmUplink(t, "up-ia", "192.168.196.254/24", "192.168.196.50/24")
		if now := liveV4(t, spec.name); now.Overlaps(old) {
			t.Fatalf("network still on %s when nmcli connection up returned", now)
		}
	})
	t.Run("dispatcher.d at reapply", func(t *testing.T) {
		nmUplink(t, "up-ib", "10.196.0.1/24", "10.196.0.2/24")
		spec := netSpec{name: "ib", bridge: "vbr-ib", v4: "192.168.197", policy: "renumber"}
		defineNetwork(t, spec)
		old := netip.MustParsePrefix("192.168.197.0/24")
		labkit.Run(t, "nmcli", "connection", "modify", "up-ib", "+ipv4.addresses", "192.168.197.50/24")
		labkit.Run(t, "nmcli", "device", "reapply", "up-ib")
		movedAway(t, installedDirs, spec.name, old, 15*time.Second)
	})
}

// The daemon as its installed unit starts it: the unit's ExecStart, with
// the installed configuration and default paths, tells systemd it is ready
// (Type=notify: READY=1 on NOTIFY_SOCKET), moves a network that an address
// added by hand clashes with, is woken by the installed hook, reloads on
// the unit's ExecReload signal (SIGHUP) and stops cleanly on SIGTERM.
func TestPkgInstalledDaemonUnit(t *testing.T) {
	requireDpkgInstalled(t)
	unit, err := os.ReadFile(installedUnit)
	if err != nil {
		t.Fatal(err)
	}
	var argv []string
	for _, l := range strings.Split(string(unit), "\n") {
		if v, ok := strings.CutPrefix(l, "ExecStart="); ok {
			argv = strings.Fields(v)
		}
	}
	if len(argv) == 0 || argv[0] != installedBinary || !strings.Contains(string(unit), "\nType=notify\n") {
		t.Fatalf("%s: ExecStart %q, want %s and Type=notify", installedUnit, argv, installedBinary)
	}

	notify := filepath.Join(t.TempDir(), "notify")
	nc, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notify, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ready := make(chan string, 1)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := nc.Read(buf)
			if err != nil {
				return
			}
			if strings.Contains("\n"+string(buf[:n])+"\n", "\nREADY=1\n") {
				select {
				case ready <- string(buf[:n]):
				default:
				}
			}
		}
	}()

	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+notify)
	dm := startDaemonCmd(t, cmd)
	select {
	case <-ready:
	case <-time.After(20 * time.Second):
		t.Fatalf("no READY=1 from the daemon; its log:\n%s", strings.Join(dm.lines(), "\n"))
	}
	eventually(t, 5*time.Second, "the daemon to say it listens", func() bool { return dm.count("msg=listening") > 0 })

	spec := netSpec{name: "ic", bridge: "vbr-ic", v4: "192.168.198", policy: "renumber"}
	defineNetwork(t, spec)
	clashingUplink(t, "up-ic", "192.168.198.9/24")
	movedAway(t, installedDirs, spec.name, netip.MustParsePrefix("192.168.198.0/24"), 10*time.Second)

	// A pass lists at most 8 of the reasons that started it: ring once the
	// daemon has been quiet for a second, so the ring's reason is listed.
	quiet, n := time.Now(), len(dm.lines())
	eventually(t, 15*time.Second, "the daemon to be quiet for a second", func() bool {
		if m := len(dm.lines()); m != n {
			quiet, n = time.Now(), m
		}
		return time.Since(quiet) > time.Second
	})
	hook := exec.Command(installedHooks+"/90-vnetguard", "up-ic", "up")
	hook.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "NM_DISPATCHER_ACTION=up", "DEVICE_IFACE=up-ic"}
	if out, err := hook.CombinedOutput(); err != nil || !strings.Contains(string(out), "woke the listener daemon") {
		t.Fatalf("the installed hook did not wake the daemon: %v: %s", err, out)
	}
	eventually(t, 5*time.Second, "the daemon to run a pass for the hook's ring", func() bool {
		return dm.count("msg=checked", "dispatcher: up up-ic") > 0
	})

	cmd.Process.Signal(syscall.SIGHUP)
	eventually(t, 5*time.Second, "the daemon to reload its configuration", func() bool {
		return dm.count("configuration reloaded", "/etc/vnetguard/vnetguard.conf") > 0
	})
	dm.stop(t)
}

//go:build lab

package labkit

import (
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
)

// The lab is a host of its own: its own hostname; /etc and /usr overlays
// whose writes vanish with the lab (NetworkManager and DHCP clients rewrite
// /etc/resolv.conf); empty state directories; no package installs; global
// sysctls out of reach.
func TestLabIsolated(t *testing.T) {
	Require(t)
	if h, _ := os.Hostname(); h != "vnetguard-lab" {
		t.Errorf("hostname %q: not the lab's UTS namespace", h)
	}
	for _, m := range []string{"/etc", "/usr"} {
		if fs := strings.TrimSpace(Run(t, "findmnt", "-n", "-o", "FSTYPE", m)); fs != "overlay" {
			t.Errorf("%s is %s, not the lab's overlay", m, fs)
		}
	}
	if err := os.WriteFile("/var/lib/dpkg/lab-probe", nil, 0o644); err == nil {
		os.Remove("/var/lib/dpkg/lab-probe")
		t.Errorf("the package database is writable from the lab")
	}
	mounts := Run(t, "findmnt", "-rn", "-o", "TARGET")
	for _, m := range []string{"/run", "/var/lib/libvirt", "/etc/libvirt/qemu",
		"/etc/NetworkManager/system-connections", "/etc/NetworkManager/dispatcher.d", "/var/lib/NetworkManager",
		"/var/lib/vnetguard", "/etc/vnetguard", "/var/cache/vnetguard"} {
		if !strings.Contains("\n"+mounts, "\n"+m+"\n") {
			t.Errorf("%s is not a private mount of the lab", m)
		}
	}
	if err := os.WriteFile("/proc/sys/vm/swappiness", []byte("60"), 0); err == nil {
		t.Errorf("a global sysctl is writable from the lab")
	}
	if _, err := Try("sysctl", "-qw", "net.ipv4.conf.lo.forwarding=0"); err != nil {
		t.Errorf("net.* sysctls must stay writable: %v", err)
	}
}

// mountInfo is one line of /proc/self/mountinfo: the mount point, the
// filesystem type and the device (major:minor).
type mountInfo struct{ target, fstype, dev string }

func mounts(t *testing.T) map[string]mountInfo {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]mountInfo{}
	for _, line := range strings.Split(string(b), "\n") {
		// id parent major:minor root target options [optional...] - fstype source super
		f := strings.Fields(line)
		sep := slices.Index(f, "-")
		if len(f) < 5 || sep < 0 || sep+1 >= len(f) {
			continue
		}
		m[f[4]] = mountInfo{target: f[4], fstype: f[sep+1], dev: f[2]} // the last mount on a path wins
	}
	return m
}

// Hooks installed on the real host do not run in the lab, and the lab's
// /tmp is its own: /usr/lib/NetworkManager/dispatcher.d (with its three
// subdirectories, empty) and /tmp are tmpfs mounts of the lab. A lab started
// inside this one (whose /usr and /tmp stand for the real host's) does not
// see a hook or a file put there, and what it writes there stays inside it;
// its LAB_LOGDIR, under /tmp, stays visible and outlives it.
func TestLabHidesHostHooksAndTmp(t *testing.T) {
	Require(t)
	const hooks = "/usr/lib/NetworkManager/dispatcher.d"
	m := mounts(t)
	for _, dir := range []string{hooks, "/tmp"} {
		mi, ok := m[dir]
		if !ok || mi.fstype != "tmpfs" {
			t.Errorf("%s is not a tmpfs mount of the lab: %+v", dir, mi)
		}
		if mi.dev == m["/usr"].dev || mi.dev == m["/"].dev {
			t.Errorf("%s shares its device %s with / or /usr", dir, mi.dev)
		}
	}
	var names []string
	filepath.WalkDir(hooks, func(path string, d os.DirEntry, err error) error {
		if path != hooks {
			names = append(names, strings.TrimPrefix(path, hooks+"/"))
		}
		return err
	})
	if want := []string{"no-wait.d", "pre-down.d", "pre-up.d"}; !slices.Equal(names, want) {
		t.Errorf("%s holds %q, want only the empty %q", hooks, names, want)
	}

	// This lab is the host of a lab started inside it.
	tag := strconv.Itoa(os.Getpid())
	WriteFile(t, hooks+"/90-outer-"+tag, "#!/bin/sh\nexit 0\n", 0o755)
	WriteFile(t, "/tmp/outer-"+tag, "", 0o644)
	logdir := t.TempDir() // under this lab's /tmp
	script := `set -e
for f in ` + hooks + `/90-outer-` + tag + ` /tmp/outer-` + tag + `; do
	if [ -e "$f" ]; then echo "sees the host's $f"; exit 1; fi
done
[ -z "$(ls -A ` + hooks + `/pre-up.d)" ] || { echo "pre-up.d is not empty"; exit 1; }
echo probe >` + hooks + `/pre-up.d/90-inner-` + tag + `
echo probe >/tmp/inner-` + tag + `
echo probe >"$LAB_LOGDIR/inner-` + tag + `"
`
	cmd := exec.Command(filepath.Join(scriptsDir(), "lab"), "run", "--", "bash", "-c", script)
	cmd.Env = append(os.Environ(), "LAB_LOGDIR="+logdir, "LAB_FAIL_LOGS=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the lab inside the lab: %v\n%s", err, out)
	}
	for _, f := range []string{hooks + "/pre-up.d/90-inner-" + tag, "/tmp/inner-" + tag} {
		if _, err := os.Stat(f); err == nil {
			t.Errorf("%s, written inside the inner lab, is visible outside it", f)
		}
	}
	for _, f := range []string{"inner-" + tag, "startup.log"} {
		if _, err := os.Stat(filepath.Join(logdir, f)); err != nil {
			t.Errorf("the inner lab's LAB_LOGDIR lost %s: %v", f, err)
		}
	}
}

// libvirt's default network runs, its dnsmasq leases to guests (with either
// DHCP client), and the guests reach the bridge.
func TestDefaultNetworkLeases(t *testing.T) {
	Require(t)
	DefaultNetwork(t)
	if out := Run(t, "ip", "-4", "-o", "addr", "show", "dev", "virbr0"); !strings.Contains(out, "192.168.122.1/24") {
		t.Fatalf("virbr0 lacks 192.168.122.1/24: %s", out)
	}
	lan := netip.MustParsePrefix("192.168.122.0/24")
	gw := netip.MustParseAddr("192.168.122.1")

	g1 := NewGuest(t, "g-lc1", "virbr0")
	t.Setenv("LAB_DHCP_CLIENT", "dhclient")
	g2 := NewGuest(t, "g-lc2", "virbr0")
	start := time.Now()
	for _, g := range []*Guest{g1, g2} {
		a := g.WaitAddr(t, lan, 45*time.Second)
		t.Logf("%s leased %s after %v", g.Name, a, time.Since(start).Round(time.Millisecond))
		if err := g.Ping(t, gw); err != nil {
			t.Fatalf("%s cannot reach %s: %v", g.Name, gw, err)
		}
	}
	if out := Run(t, "virsh", "net-dhcp-leases", "default"); !strings.Contains(out, "192.168.122.") {
		t.Errorf("libvirt lists no leases: %s", out)
	}
}

// A NetworkManager connection on an uplink activates with its static
// address and DNS server (written to the lab's own resolv.conf), reaches the
// router, and the dispatcher runs hooks from /etc/NetworkManager/dispatcher.d
// with the documented arguments and environment.
func TestNetworkManagerUplinkAndDispatcher(t *testing.T) {
	Require(t)
	out := t.TempDir()
	WriteFile(t, "/etc/NetworkManager/dispatcher.d/50-labcheck", `#!/bin/sh
[ "$1" = up-lc ] || exit 0
env > `+out+`/"$2".env
`, 0o755)

	up := NewUplink(t, "up-lc", "10.123.0.1/24")
	up.NMStatic(t, "10.123.0.2/24", "ipv4.dns", "10.123.0.1")
	if got := Run(t, "nmcli", "-g", "GENERAL.STATE", "connection", "show", "up-lc"); strings.TrimSpace(got) != "activated" {
		t.Fatalf("connection state %q", got)
	}
	if got := Run(t, "ip", "-4", "-o", "addr", "show", "dev", up.Name); !strings.Contains(got, "10.123.0.2/24") {
		t.Fatalf("NetworkManager did not configure the uplink: %s", got)
	}
	Run(t, "ping", "-c", "1", "-W", "2", "10.123.0.1")
	up.Exec(t, "ping", "-c", "1", "-W", "2", "10.123.0.2")

	env := filepath.Join(out, "up.env")
	Eventually(t, 10*time.Second, "the dispatcher to run the hook for up", func() bool {
		_, err := os.Stat(env)
		return err == nil
	})
	b, _ := os.ReadFile(env)
	for _, want := range []string{"NM_DISPATCHER_ACTION=up", "DEVICE_IFACE=up-lc", "CONNECTION_ID=up-lc", "IP4_ADDRESS_0=10.123.0.2/24"} {
		if !strings.Contains(string(b), want+"\n") && !strings.Contains(string(b), want+" ") {
			t.Errorf("hook environment lacks %s:\n%s", want, b)
		}
	}
	Eventually(t, 10*time.Second, "NetworkManager to write the lab's resolv.conf", func() bool {
		b, _ := os.ReadFile("/etc/resolv.conf")
		return strings.Contains(string(b), "nameserver 10.123.0.1")
	})
}

// libvirt-dbus answers on the system bus: it lists the running default
// network, creates a transient network and signals NetworkEvent STARTED
// for it.
func TestLibvirtDBus(t *testing.T) {
	Require(t)
	DefaultNetwork(t)
	conn, err := dbus.ConnectSystemBus()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	lv := conn.Object("org.libvirt", "/org/libvirt/QEMU")

	var nets []dbus.ObjectPath
	if err := lv.Call("org.libvirt.Connect.ListNetworks", 0, uint32(0)).Store(&nets); err != nil {
		t.Fatalf("ListNetworks: %v", err)
	}
	var def dbus.ObjectPath
	if err := lv.Call("org.libvirt.Connect.NetworkLookupByName", 0, "default").Store(&def); err != nil {
		t.Fatalf("NetworkLookupByName default: %v", err)
	}
	found := false
	for _, n := range nets {
		found = found || n == def
	}
	if !found {
		t.Fatalf("ListNetworks %v lacks default %s", nets, def)
	}

	if err := conn.AddMatchSignal(dbus.WithMatchObjectPath("/org/libvirt/QEMU"),
		dbus.WithMatchInterface("org.libvirt.Connect"), dbus.WithMatchMember("NetworkEvent")); err != nil {
		t.Fatal(err)
	}
	sigs := make(chan *dbus.Signal, 16)
	conn.Signal(sigs)
	var n dbus.ObjectPath
	xml := `<network><name>lc-dbus</name><bridge name='vbr-lcd' stp='off'/>` +
		`<ip address='192.168.241.1' prefix='24'/></network>`
	if err := lv.Call("org.libvirt.Connect.NetworkCreateXML", 0, xml).Store(&n); err != nil {
		t.Fatalf("NetworkCreateXML: %v", err)
	}
	t.Cleanup(func() { conn.Object("org.libvirt", n).Call("org.libvirt.Network.Destroy", 0) })
	timeout := time.After(10 * time.Second)
	for {
		select {
		case s := <-sigs:
			if len(s.Body) == 2 && s.Body[0] == n && s.Body[1] == int32(2) {
				return
			}
		case <-timeout:
			t.Fatalf("no NetworkEvent STARTED for %s", n)
		}
	}
}

//go:build lab

package e2e

import (
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vnetguard/vnetguard/scripts/labkit"
)

const daemonConfig = "[watch]\ndebounce=200ms\ndamping-window=10s\n"

// movedAway waits until the network's live IPv4 (or IPv6) subnet is no
// longer old.
func movedAway(t *testing.T, d dirs, name string, old netip.Prefix, within time.Duration) netip.Prefix {
	t.Helper()
	var now netip.Prefix
	eventually(t, within, name+" to move off "+old.String(), func() bool {
		now = liveSubnetQuiet(d, name, old.Addr().Is4())
		return now.IsValid() && !now.Overlaps(old)
	})
	return now
}

// liveSubnetQuiet reads status without logging (for polling loops).
func liveSubnetQuiet(d dirs, name string, v4 bool) netip.Prefix {
	out, err := exec.Command(vnetguardBin, d.flags("status", "--json")...).Output()
	if err != nil && len(out) == 0 {
		return netip.Prefix{}
	}
	var all []networkStatus
	if jsonUnmarshal(out, &all) != nil {
		return netip.Prefix{}
	}
	for _, s := range all {
		if s.Name == name {
			for _, p := range s.LiveSubnets {
				if p.Addr().Is4() == v4 {
					return p
				}
			}
		}
	}
	return netip.Prefix{}
}

// The dispatcher hook alone, daemon stopped: a NetworkManager connection
// that activates with a clashing static address gets the network moved.
func TestHookAloneResolvesNMConnection(t *testing.T) {
	labkit.Require(t)
	dispatcherHook(t, "/etc/NetworkManager/dispatcher.d/90-vnetguard")
	// The hook uses the installed paths (the lab's throwaway /var/cache).
	d := dirs{cache: "/var/cache/vnetguard", state: "/var/lib/vnetguard"}
	spec := netSpec{name: "hk", bridge: "vbr-hk", v4: "192.168.170", policy: "renumber"}
	defineNetwork(t, spec)
	nmUplink(t, "up-hk", "192.168.170.254/24", "192.168.170.50/24")
	movedAway(t, d, spec.name, netip.MustParsePrefix("192.168.170.0/24"), 20*time.Second)
}

func TestDaemonResolvesAddressRouteAndIPv6(t *testing.T) {
	labkit.Require(t)
	d := newDirs(t)
	startDaemon(t, d, writeConfig(t, daemonConfig))

	t.Run("address added with ip", func(t *testing.T) {
		spec := netSpec{name: "da", bridge: "vbr-da", v4: "192.168.171", policy: "renumber"}
		defineNetwork(t, spec)
		clashingUplink(t, "up-da", "192.168.171.50/24")
		movedAway(t, d, spec.name, netip.MustParsePrefix("192.168.171.0/24"), 10*time.Second)
	})
	t.Run("route in a policy table, as wg-quick does", func(t *testing.T) {
		spec := netSpec{name: "dr", bridge: "vbr-dr", v4: "192.168.172", policy: "renumber"}
		defineNetwork(t, spec)
		labkit.NewUplink(t, "up-dr", "10.201.0.1/24")
		labkit.Run(t, "ip", "addr", "add", "10.201.0.2/24", "dev", "up-dr")
		labkit.Run(t, "ip", "route", "add", "192.168.172.0/24", "via", "10.201.0.1", "dev", "up-dr", "table", "51821")
		labkit.Run(t, "ip", "rule", "add", "to", "192.168.172.0/24", "lookup", "51821", "priority", "3001")
		t.Cleanup(func() { exec.Command("ip", "rule", "del", "priority", "3001").Run() })
		movedAway(t, d, spec.name, netip.MustParsePrefix("192.168.172.0/24"), 10*time.Second)
	})
	t.Run("IPv6 prefix", func(t *testing.T) {
		spec := netSpec{name: "d6", bridge: "vbr-d6", v4: "192.168.173", v6: "fd22:3344:5566:7", policy: "renumber"}
		defineNetwork(t, spec)
		labkit.NewUplink(t, "up-d6", "")
		labkit.Run(t, "ip", "-6", "addr", "add", "fd22:3344:5566:7::50/64", "dev", "up-d6", "nodad")
		movedAway(t, d, spec.name, netip.MustParsePrefix("fd22:3344:5566:7::/64"), 10*time.Second)
	})
}

func TestDaemonSurvivesNetworkManagerAndLibvirtdRestarts(t *testing.T) {
	labkit.Require(t)
	d := newDirs(t)
	dm := startDaemon(t, d, writeConfig(t, daemonConfig))

	// NetworkManager restarted.
	exec.Command("pkill", "-x", "NetworkManager").Run()
	eventually(t, 10*time.Second, "NetworkManager to exit", func() bool { return exec.Command("pgrep", "-x", "NetworkManager").Run() != nil })
	nm := exec.Command("NetworkManager", "--no-daemon")
	logf, _ := os.Create(filepath.Join(os.Getenv("LAB_LOGDIR"), "NetworkManager-2.log"))
	nm.Stdout, nm.Stderr = logf, logf
	if err := nm.Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "NetworkManager to answer", func() bool { return exec.Command("nmcli", "-t", "general", "status").Run() == nil })
	// libvirtd restarted.
	stopLibvirtd(t)
	startLibvirtd(t)

	spec := netSpec{name: "rs", bridge: "vbr-rs", v4: "192.168.174", policy: "renumber"}
	defineNetwork(t, spec)
	clashingUplink(t, "up-rs", "192.168.174.50/24")
	movedAway(t, d, spec.name, netip.MustParsePrefix("192.168.174.0/24"), 15*time.Second)
	if dm.count("org.freedesktop.NetworkManager (re)started") == 0 {
		t.Errorf("the daemon did not notice NetworkManager's restart")
	}
}

func TestDaemonDampsFlapping(t *testing.T) {
	labkit.Require(t)
	d := newDirs(t)
	dm := startDaemon(t, d, writeConfig(t, daemonConfig))
	spec := netSpec{name: "fl", bridge: "vbr-fl", v4: "192.168.175", policy: "renumber"}
	defineNetwork(t, spec)
	labkit.NewUplink(t, "up-fl", "")
	// 50 times in 10 seconds: present 100ms, gone 100ms.
	for i := 0; i < 50; i++ {
		labkit.Run(t, "ip", "addr", "add", "192.168.175.50/24", "dev", "up-fl")
		time.Sleep(100 * time.Millisecond)
		labkit.Run(t, "ip", "addr", "del", "192.168.175.50/24", "dev", "up-fl")
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // let the last burst settle
	moves := dm.count("renumbered virtual network", "network=fl")
	if moves > 1 {
		t.Fatalf("network moved %d times during the flapping, want at most once", moves)
	}
	t.Logf("moves during flapping: %d", moves)
}

func TestDaemonMovesNetworkStartedOntoClash(t *testing.T) {
	labkit.Require(t)
	d := newDirs(t)
	startDaemon(t, d, writeConfig(t, daemonConfig))
	labkit.NewUplink(t, "up-so", "")
	// A /25 inside the network's /24: libvirt's own check (exact match
	// only) lets it start.
	labkit.Run(t, "ip", "addr", "add", "192.168.176.130/25", "dev", "up-so")
	spec := netSpec{name: "so", bridge: "vbr-so", v4: "192.168.176", policy: "renumber"}
	start := time.Now()
	defineNetwork(t, spec)
	movedAway(t, d, spec.name, netip.MustParsePrefix("192.168.176.0/24"), 5*time.Second)
	t.Logf("moved %v after the network started", time.Since(start).Round(time.Millisecond))
}

// Hostile dispatcher environments: exit 0 quickly, act on nothing. The
// environments claim a clash with the test network in malformed ways; a
// sloppy parser would act on them.
func TestHookHostileEnvironments(t *testing.T) {
	labkit.Require(t)
	d := dirs{cache: "/var/cache/vnetguard", state: "/var/lib/vnetguard"}
	spec := netSpec{name: "ho", bridge: "vbr-ho", v4: "192.168.177", policy: "renumber"}
	defineNetwork(t, spec)
	hook := filepath.Join(t.TempDir(), "90-vnetguard")
	if err := os.Symlink(vnetguardBin, hook); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("x", 5000)
	envs := [][]string{
		{"NM_DISPATCHER_ACTION=up", "DEVICE_IFACE=eth0", "IP4_NUM_ADDRESSES=1", "IP4_ADDRESS_0=192.168.177.5/24;reboot 0.0.0.0"},
		{"NM_DISPATCHER_ACTION=up", "DEVICE_IFACE=$(reboot)", "IP4_NUM_ADDRESSES=99999999999999", "IP4_ADDRESS_0=garbage"},
		{"NM_DISPATCHER_ACTION=up", "DEVICE_IFACE=" + long, "IP4_NUM_ROUTES=-1", "IP4_ROUTE_0=192.168.177.0/24 x y"},
		{"NM_DISPATCHER_ACTION=vpn-up", "VPN_IP_IFACE=`id`", "VPN_IP4_NUM_ADDRESSES=1", "VPN_IP4_ADDRESS_0=192.168.177.5/33"},
		{"NM_DISPATCHER_ACTION=up", "IP6_NUM_ADDRESSES=1", "IP6_ADDRESS_0=fe80::1%eth0/64"},
		{"NM_DISPATCHER_ACTION=" + long},
		{},
	}
	for i, env := range envs {
		cmd := exec.Command(hook, "eth0;ls", "up")
		cmd.Env = append([]string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}, env...)
		start := time.Now()
		out, err := cmd.CombinedOutput()
		took := time.Since(start)
		if err != nil {
			t.Errorf("env %d: exit %v: %s", i, err, out)
		}
		if took > 3*time.Second {
			t.Errorf("env %d: took %v", i, took)
		}
		t.Logf("env %d: %v: %s", i, took.Round(time.Millisecond), strings.TrimSpace(string(out)))
	}
	if got := liveSubnetQuiet(d, spec.name, true); got != netip.MustParsePrefix("192.168.177.0/24") {
		t.Fatalf("a hostile environment moved the network to %s", got)
	}
	st := status(t, d, spec.name)
	if st.LastAction != nil {
		t.Fatalf("a hostile environment caused an action: %+v", st.LastAction)
	}
}

// With the daemon running, the hook only rings its doorbell and returns.
func TestHookWakesRunningDaemon(t *testing.T) {
	labkit.Require(t)
	d := newDirs(t)
	dm := startDaemonAt(t, d, writeConfig(t, daemonConfig), "/run/vnetguard/wake.sock")
	hook := filepath.Join(t.TempDir(), "90-vnetguard")
	if err := os.Symlink(vnetguardBin, hook); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(hook, "up-wk", "up")
	cmd.Env = []string{"NM_DISPATCHER_ACTION=up", "DEVICE_IFACE=up-wk"}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "woke the listener daemon") {
		t.Fatalf("hook: %v: %s", err, out)
	}
	eventually(t, 5*time.Second, "the daemon to run a pass for the ring", func() bool {
		return dm.count("msg=checked", "dispatcher: up up-wk") > 0
	})
}

// libvirtd frozen (SIGSTOP): the hook still returns 0 within its deadline,
// having changed nothing.
func TestHookDeadlineWhenLibvirtdHangs(t *testing.T) {
	labkit.Require(t)
	hook := filepath.Join(t.TempDir(), "90-vnetguard")
	if err := os.Symlink(vnetguardBin, hook); err != nil {
		t.Fatal(err)
	}
	labkit.Run(t, "pkill", "-STOP", "-x", "libvirtd")
	t.Cleanup(func() {
		exec.Command("pkill", "-CONT", "-x", "libvirtd").Run()
		eventually(t, 20*time.Second, "libvirtd to answer again", func() bool {
			return exec.Command("virsh", "-c", "qemu:///system", "net-list").Run() == nil
		})
	})
	cmd := exec.Command(hook, "up-hg", "up")
	cmd.Env = []string{"NM_DISPATCHER_ACTION=up", "DEVICE_IFACE=up-hg"}
	start := time.Now()
	out, err := cmd.CombinedOutput()
	took := time.Since(start)
	if err != nil {
		t.Fatalf("hook failed: %v: %s", err, out)
	}
	if took > 11*time.Second {
		t.Fatalf("hook took %v, past its 10s deadline", took)
	}
	t.Logf("hook gave up after %v: %s", took.Round(time.Millisecond), strings.TrimSpace(string(out)))
}

//go:build lab

package e2e

import (
	"encoding/json"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vnetguard/vnetguard/nmhook/state"
	"github.com/vnetguard/vnetguard/scripts/labkit"
)

// intentsLeft lists unfinished-change records in the default runtime dir.
func intentsLeft() []string {
	m, _ := filepath.Glob("/run/vnetguard/intents/*.json")
	return m
}

// coherence checks what must hold after any interruption once the next
// vnetguard run has been: the network runs on one of the subnets it was
// moved between, its definition is unchanged, its guests' ports are known
// to libvirt and plugged into its bridge, no intent is left, and the
// remembered state is readable.
type coherence struct {
	network, bridge string
	subnets         []netip.Prefix
	defined         string
	ports           []string
	taps            []string
	vms             []*labkit.GuestVM // their NICs' links must be up
	d               dirs
}

func (c coherence) check(t *testing.T) (netip.Prefix, string) {
	t.Helper()
	st := status(t, c.d, c.network)
	if !st.Active || len(st.LiveSubnets) != 1 {
		return netip.Prefix{}, "network not running: " + st.Error
	}
	live := st.LiveSubnets[0].Masked()
	if !slices.Contains(c.subnets, live) {
		return live, "running on an unexpected subnet " + live.String()
	}
	if got := virsh(t, "net-dumpxml", "--inactive", c.network); got != c.defined {
		return live, "persistent definition changed"
	}
	if got := portUUIDs(t, c.network); !slices.Equal(got, c.ports) {
		return live, "ports differ: " + strings.Join(got, ",")
	}
	for _, tap := range c.taps {
		if m := master(tap); m != c.bridge {
			return live, tap + " is on " + strconv.Quote(m)
		}
	}
	for _, vm := range c.vms {
		out, err := labkit.Try("virsh", "-q", "domif-getlink", vm.Domain(), vm.MAC().String())
		if err != nil || !strings.Contains(out, " up") {
			return live, "guest " + vm.Domain() + "'s link is not up: " + strings.TrimSpace(out)
		}
	}
	if left := intentsLeft(); len(left) > 0 {
		return live, "intent left: " + strings.Join(left, ",")
	}
	b, err := os.ReadFile(filepath.Join(c.d.cache, "memory.json"))
	if err == nil && !json.Valid(b) {
		return live, "memory.json is not valid JSON"
	}
	return live, ""
}

func killRuns() int {
	if n, err := strconv.Atoi(os.Getenv("VNETGUARD_KILL_RUNS")); err == nil && n > 0 {
		return n
	}
	return 30
}

// TestKillNineAnywhereInARenumber kills `vnetguard renumber` with SIGKILL at
// a random point (0-800 ms) of each of many renumbers of a network with a
// real VM guest and a namespace guest; the next run (status) must always
// find a coherent network. VNETGUARD_KILL_RUNS sets the count (make
// test-faults runs 100).
func TestKillNineAnywhereInARenumber(t *testing.T) {
	labkit.Require(t)
	d := newDirs(t)
	vm, a := vmOnNetwork(t, "kn", "vbr-kn", "192.168.164")
	g := labkit.NewGuest(t, "g-kn", "vbr-kn")
	g.WaitAddr(t, a, 30*time.Second)
	b := netip.MustParsePrefix("192.168.165.0/24")
	c := coherence{network: "kn", bridge: "vbr-kn", subnets: []netip.Prefix{a, b},
		defined: virsh(t, "net-dumpxml", "--inactive", "kn"), ports: portUUIDs(t, "kn"),
		taps: []string{vm.Tap(t), g.Port()}, vms: []*labkit.GuestVM{vm}, d: d}

	runs, coherent := killRuns(), 0
	on := a
	for i := range runs {
		target := a
		if on == a {
			target = b
		}
		cmd := exec.Command(vnetguardBin, d.flags("renumber", "kn", "--ipv4", target.String())...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		delay := time.Duration(rand.IntN(800)) * time.Millisecond
		time.Sleep(delay)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		live, problem := c.check(t)
		if problem != "" {
			t.Errorf("run %d (killed after %v): %s", i, delay, problem)
		} else {
			coherent++
		}
		if live.IsValid() {
			on = live
		}
	}
	t.Logf("kill -9 at random points: %d/%d runs coherent", coherent, runs)

	// Still connected at the end: one clean renumber and the VM re-leases.
	leases := len(vm.Leases())
	target := a
	if on == a {
		target = b
	}
	if r := vnetguard(t, nil, d.flags("renumber", "kn", "--ipv4", target.String())...); r.code != 0 {
		t.Fatalf("final renumber: exit %d", r.code)
	}
	addr := vm.WaitLeaseAfter(t, leases, target, 60*time.Second)
	if err := vm.Ping(addr, 20*time.Second); err != nil {
		t.Fatal(err)
	}
}

// TestLibvirtdKilledMidRenumber: libvirtd dies (SIGKILL) while a renumber
// runs and is restarted; the next vnetguard run leaves the network running.
func TestLibvirtdKilledMidRenumber(t *testing.T) {
	labkit.Require(t)
	d := newDirs(t)
	spec := netSpec{name: "lk", bridge: "vbr-lk", v4: "192.168.166", policy: "renumber"}
	defineNetwork(t, spec)
	g := labkit.NewGuest(t, "g-lk", spec.bridge)
	a, b := netip.MustParsePrefix("192.168.166.0/24"), netip.MustParsePrefix("192.168.167.0/24")
	g.WaitAddr(t, a, 30*time.Second)
	c := coherence{network: "lk", bridge: spec.bridge, subnets: []netip.Prefix{a, b},
		defined: virsh(t, "net-dumpxml", "--inactive", "lk"), ports: portUUIDs(t, "lk"), taps: []string{g.Port()}, d: d}
	on := a
	for i := range 6 {
		target := a
		if on == a {
			target = b
		}
		cmd := exec.Command(vnetguardBin, d.flags("renumber", "lk", "--ipv4", target.String(), "--timeout", "5s")...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(rand.IntN(400)) * time.Millisecond)
		exec.Command("pkill", "-KILL", "-x", "libvirtd").Run()
		cmd.Wait()
		eventually(t, 10*time.Second, "libvirtd to be gone", func() bool { return exec.Command("pgrep", "-x", "libvirtd").Run() != nil })
		startLibvirtd(t)
		live, problem := c.check(t)
		if problem != "" {
			t.Fatalf("run %d: %s", i, problem)
		}
		on = live
	}
}

// TestHookHandsOverWhenLibvirtdFreezes: libvirtd is frozen during the
// hook's renumber, past the hook's deadline. The hook still returns within
// it, and once libvirtd thaws the handed-over recovery leaves the network
// running.
func TestHookHandsOverWhenLibvirtdFreezes(t *testing.T) {
	labkit.Require(t)
	spec := netSpec{name: "fz", bridge: "vbr-fz", v4: "192.168.168", policy: "renumber"}
	defineNetwork(t, spec)
	nmUplink(t, "up-fz", "192.168.168.254/24", "192.168.168.50/24")
	cmd := exec.Command(vnetguardBin, "hook", "up-fz", "up")
	cmd.Env = []string{"NM_DISPATCHER_ACTION=up", "DEVICE_IFACE=up-fz"}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Freeze libvirtd the moment the hook has recorded its intent: the
	// network is about to be stopped (or just was), so the hook cannot
	// finish in time and must hand over.
	eventually(t, 8*time.Second, "the hook to record its intent", func() bool { return len(intentsLeft()) > 0 })
	labkit.Run(t, "pkill", "-STOP", "-x", "libvirtd")
	thawed := false
	thaw := func() {
		if !thawed {
			exec.Command("pkill", "-CONT", "-x", "libvirtd").Run()
			thawed = true
		}
	}
	t.Cleanup(thaw)
	cmd.Wait()
	took := time.Since(start)
	if took > 11*time.Second {
		t.Fatalf("hook took %v, past its 10s deadline", took)
	}
	if len(intentsLeft()) == 0 {
		t.Fatal("the hook ended with no intent left while libvirtd was frozen mid-change")
	}
	if exec.Command("pgrep", "-f", "vnetguard recover").Run() != nil {
		t.Fatal("no vnetguard recover was handed the change")
	}
	time.Sleep(2 * time.Second)
	thaw()
	eventually(t, 90*time.Second, "network fz to run again with no intent left", func() bool {
		out, err := labkit.Try("virsh", "-q", "net-info", "fz")
		return err == nil && labkit.NetworkActive(out) && len(intentsLeft()) == 0
	})
	d := newDirs(t)
	live := liveSubnet(t, d, "fz", true)
	if live.Overlaps(netip.MustParsePrefix("192.168.168.0/24")) {
		t.Fatalf("network fz ended on %s, its clashing subnet: the handed-over change was not carried through", live)
	}
	// The recovery that carried it through remembered it, as the hook
	// would have (the hook ran with the default cache directory).
	mem, err := state.LoadMemory("/var/cache/vnetguard")
	if err != nil {
		t.Fatal(err)
	}
	if got := mem.Remembered("fz", netip.MustParsePrefix("192.168.168.0/24")); !slices.Contains(got, live.Masked()) {
		t.Fatalf("memory.json remembers %v for fz's 192.168.168.0/24, want %s", got, live.Masked())
	}
	if a := mem.Networks["fz"].LastAction; a == nil || a.Action != "renumber" {
		t.Fatalf("memory.json's last action for fz: %+v, want the renumber", a)
	}
	t.Logf("hook returned after %v", took.Round(time.Millisecond))
}

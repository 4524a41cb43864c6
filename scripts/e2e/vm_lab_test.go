//go:build lab

package e2e

import (
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vnetguard/vnetguard/scripts/labkit"
)

// portUUIDs lists a network's libvirt ports (one per guest interface).
func portUUIDs(t testing.TB, network string) []string {
	t.Helper()
	out := virsh(t, "net-port-list", "--uuid", network)
	var ids []string
	for _, f := range strings.Fields(out) {
		ids = append(ids, f)
	}
	slices.Sort(ids)
	return ids
}

// master is the bridge an interface is enslaved to ("" if none).
func master(ifname string) string {
	target, err := os.Readlink(filepath.Join("/sys/class/net", ifname, "master"))
	if err != nil {
		return ""
	}
	return filepath.Base(target)
}

// libvirtdLogSize marks the lab's libvirtd log, so that a test can look at
// what was logged after a point.
func libvirtdLog() string { return filepath.Join(os.Getenv("LAB_LOGDIR"), "libvirtd.log") }

func logSince(offset int64) string {
	b, err := os.ReadFile(libvirtdLog())
	if err != nil || int64(len(b)) < offset {
		return ""
	}
	return string(b[offset:])
}

func logSize() int64 {
	fi, err := os.Stat(libvirtdLog())
	if err != nil {
		return 0
	}
	return fi.Size()
}

// vmOnNetwork defines a renumber-policy network on v4 (a /24 prefix like
// "192.168.160") and boots a real qemu guest on it until it has a lease.
func vmOnNetwork(t *testing.T, name, bridge, v4 string) (*labkit.GuestVM, netip.Prefix) {
	t.Helper()
	spec := netSpec{name: name, bridge: bridge, v4: v4, policy: "renumber"}
	defineNetwork(t, spec)
	vm := labkit.StartGuestVM(t, "vm-"+name, name)
	old := netip.MustParsePrefix(v4 + ".0/24")
	addr := vm.WaitLease(t, old, 120*time.Second)
	if err := vm.Ping(addr, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	return vm, old
}

// checkGuestFollowed asserts what a renumber must keep: the guest re-leased
// in the new subnet and answers there, libvirt's ports are those of before,
// the tap is on the bridge, and the persistent definition is unchanged.
func checkGuestFollowed(t *testing.T, vm *labkit.GuestVM, network, bridge string, leasesBefore int, moved netip.Prefix, portsBefore []string, defined string, since time.Time) {
	t.Helper()
	addr := vm.WaitLeaseAfter(t, leasesBefore, moved, 60*time.Second)
	t.Logf("clash -> guest re-leased %s: %v", addr, time.Since(since).Round(10*time.Millisecond))
	if err := vm.Ping(addr, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	if after := portUUIDs(t, network); !slices.Equal(after, portsBefore) {
		t.Fatalf("net-port-list changed: before %v, after %v", portsBefore, after)
	}
	if m := master(vm.Tap(t)); m != bridge {
		t.Fatalf("tap %s is on %q, want %s", vm.Tap(t), m, bridge)
	}
	if after := virsh(t, "net-dumpxml", "--inactive", network); after != defined {
		t.Fatalf("persistent definition changed:\nbefore:\n%s\nafter:\n%s", defined, after)
	}
}

// stopGuestLogsNothing stops the VM and checks libvirtd had no complaint
// about its network port (as it has when the port was lost).
func stopGuestLogsNothing(t *testing.T, vm *labkit.GuestVM) {
	t.Helper()
	mark := logSize()
	virsh(t, "destroy", vm.Domain())
	time.Sleep(500 * time.Millisecond)
	if l := logSince(mark); strings.Contains(l, "port") {
		t.Fatalf("libvirtd complained when the guest stopped:\n%s", l)
	}
}

func TestRealVMFollowsRenumberByResolve(t *testing.T) {
	labkit.Require(t)
	d := newDirs(t)
	vm, old := vmOnNetwork(t, "vmr", "vbr-vmr", "192.168.160")
	defined := virsh(t, "net-dumpxml", "--inactive", "vmr")
	ports := portUUIDs(t, "vmr")
	if len(ports) != 1 {
		t.Fatalf("want one port for the guest, got %v", ports)
	}
	leases := len(vm.Leases())

	clash := time.Now()
	nmUplink(t, "up-vmr", "192.168.160.254/24", "192.168.160.50/24")
	r := vnetguard(t, nil, d.flags("resolve")...)
	if r.code != 0 || !strings.Contains(r.stdout, "vmr: renumber") {
		t.Fatalf("resolve: exit %d", r.code)
	}
	moved := liveSubnet(t, d, "vmr", true)
	if moved.Overlaps(old) {
		t.Fatalf("still on %s", moved)
	}
	checkGuestFollowed(t, vm, "vmr", "vbr-vmr", leases, moved, ports, defined, clash)
	labkit.Run(t, "ping", "-c", "1", "-W", "2", "192.168.160.254")
	stopGuestLogsNothing(t, vm)
}

func TestRealVMFollowsRenumberByDaemon(t *testing.T) {
	labkit.Require(t)
	d := newDirs(t)
	vm, old := vmOnNetwork(t, "vmw", "vbr-vmw", "192.168.161")
	defined := virsh(t, "net-dumpxml", "--inactive", "vmw")
	ports := portUUIDs(t, "vmw")
	leases := len(vm.Leases())
	dm := startDaemon(t, d, writeConfig(t, ""))

	clash := time.Now()
	clashingUplink(t, "up-vmw", "192.168.161.7/24")
	eventually(t, 20*time.Second, "the daemon to renumber vmw", func() bool {
		return dm.count("renumbered virtual network", "network=vmw") > 0
	})
	moved := liveSubnet(t, d, "vmw", true)
	if moved.Overlaps(old) {
		t.Fatalf("still on %s", moved)
	}
	checkGuestFollowed(t, vm, "vmw", "vbr-vmw", leases, moved, ports, defined, clash)
	stopGuestLogsNothing(t, vm)
}

// TestFailedCreateRestoresThePersistentNetwork: libvirt cannot start the
// network on its new subnet (its dnsmasq fails there). vnetguard puts the
// old network back, running, with its definition -- which libvirt 9 drops
// after a failed create -- defined again, byte for byte.
func TestFailedCreateRestoresThePersistentNetwork(t *testing.T) {
	labkit.Require(t)
	d := newDirs(t)
	spec := netSpec{name: "fc", bridge: "vbr-fc", v4: "192.168.162", policy: "renumber"}
	defineNetwork(t, spec)
	defined := virsh(t, "net-dumpxml", "--inactive", "fc")
	g := labkit.NewGuest(t, "g-fc", spec.bridge)
	g.WaitAddr(t, netip.MustParsePrefix("192.168.162.0/24"), 30*time.Second)
	failDnsmasqFor(t, "192.168.163.")

	r := vnetguard(t, nil, d.flags("renumber", "fc", "--ipv4", "192.168.163.0/24")...)
	if r.code != 2 || !strings.Contains(r.stderr, "starting it on its new subnets failed") || !strings.Contains(r.stderr, "back on its old subnets") {
		t.Fatalf("renumber onto a failing subnet: exit %d", r.code)
	}
	if got := liveSubnet(t, d, "fc", true); got != netip.MustParsePrefix("192.168.162.0/24") {
		t.Fatalf("live subnet %s, want the old one back", got)
	}
	if !strings.Contains(virsh(t, "net-list", "--persistent", "--name"), "fc") {
		t.Fatal("the network is no longer persistent")
	}
	if after := virsh(t, "net-dumpxml", "--inactive", "fc"); after != defined {
		t.Fatalf("definition changed:\nbefore:\n%s\nafter:\n%s", defined, after)
	}
	if m := master(g.Port()); m != spec.bridge {
		t.Fatalf("guest port on %q after the restore", m)
	}
	// The guest was bounced with the restart: it re-leases on the old subnet.
	g.WaitAddr(t, netip.MustParsePrefix("192.168.162.0/24"), 30*time.Second)
	eventually(t, 20*time.Second, "the guest to reach the bridge", func() bool {
		return g.Ping(t, netip.MustParseAddr("192.168.162.1")) == nil
	})
}

// failDnsmasqFor makes libvirt's dnsmasq fail to start for a network whose
// configuration mentions substr: a real failure of NetworkCreateXML. The
// lab's /usr is a private overlay, so the real host is untouched.
func failDnsmasqFor(t *testing.T, substr string) {
	t.Helper()
	real := "/usr/sbin/dnsmasq"
	saved := real + ".vnetguard-test"
	if err := os.Rename(real, saved); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Rename(saved, real) })
	wrapper := "#!/bin/sh\n" +
		"for a in \"$@\"; do case $a in --conf-file=*) grep -q '" + substr + "' \"${a#--conf-file=}\" && { echo 'test: refusing to start' >&2; exit 1; } ;; esac; done\n" +
		"exec " + saved + " \"$@\"\n"
	if err := os.WriteFile(real, []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(real, "--version").CombinedOutput(); err != nil {
		t.Fatalf("dnsmasq wrapper: %v %s", err, out)
	}
}

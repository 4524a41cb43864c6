//go:build lab

package e2e

import (
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/vnetguard/vnetguard/scripts/labkit"
)

// Changes made behind the daemon's back reach its state: a network
// renumbered by another run (the CLI) is guarded on its new subnet, one
// destroyed with virsh is no longer guarded (an address on its old subnet
// makes no error and no action), and one started with virsh is guarded at
// once.
func TestDaemonStateFollowsLibvirtBehindItsBack(t *testing.T) {
	labkit.Require(t)
	d := newDirs(t)
	// No damping: each change here is a new clash, not a flap.
	dm := startDaemon(t, d, writeConfig(t, "[watch]\ndebounce=200ms\ndamping-window=0s\n"))
	spec := netSpec{name: "bb", bridge: "vbr-bb", v4: "192.168.175", policy: "renumber"}
	defineNetwork(t, spec)
	labkit.NewUplink(t, "up-bb", "")

	// Renumbered behind its back, to 10.175.0.0/24.
	if r := vnetguard(t, nil, d.flags("renumber", "bb", "--ipv4", "10.175.0.0/24")...); r.code != 0 {
		t.Fatalf("renumber: exit %d", r.code)
	}
	time.Sleep(time.Second) // the daemon sees the status file change
	before := dm.count("renumbered virtual network", "network=bb")
	labkit.Run(t, "ip", "addr", "add", "10.175.0.9/24", "dev", "up-bb")
	eventually(t, 10*time.Second, "the daemon to move bb off 10.175.0.0/24", func() bool {
		return dm.count("renumbered virtual network", "network=bb") > before
	})
	if p := liveSubnet(t, d, "bb", true); p.Overlaps(netip.MustParsePrefix("10.175.0.0/24")) {
		t.Fatalf("still on %s", p)
	}
	labkit.Run(t, "ip", "addr", "del", "10.175.0.9/24", "dev", "up-bb")

	// Destroyed behind its back: an address on its live subnet is no clash.
	live := liveSubnet(t, d, "bb", true)
	virsh(t, "net-destroy", "bb")
	time.Sleep(time.Second)
	errorsBefore := dm.count("level=ERROR")
	actsBefore := dm.count("msg=acting", "network=bb")
	addr := netip.PrefixFrom(live.Addr().Next().Next().Next(), live.Bits())
	labkit.Run(t, "ip", "addr", "add", addr.String(), "dev", "up-bb")
	time.Sleep(time.Second)
	if dm.count("msg=acting", "network=bb") != actsBefore || dm.count("level=ERROR") != errorsBefore {
		t.Fatalf("the daemon acted on or failed over a destroyed network:\n%s", strings.Join(dm.lines(), "\n"))
	}
	labkit.Run(t, "ip", "addr", "del", addr.String(), "dev", "up-bb")

	// Started behind its back onto a clash (its defined subnet, which a
	// /25 on the uplink overlaps; libvirt's exact-match check lets it start).
	labkit.Run(t, "ip", "addr", "add", "192.168.175.130/25", "dev", "up-bb")
	virsh(t, "net-start", "bb")
	movedAway(t, d, "bb", netip.MustParsePrefix("192.168.175.0/24"), 5*time.Second)
}

// At boot the daemon may start before libvirtd and the system bus: it does
// not exit (systemd would hit its start limit), it becomes ready, and once
// libvirtd is up it resolves clashes as usual.
func TestDaemonStartsBeforeLibvirtdAndTheBus(t *testing.T) {
	labkit.Require(t)
	d := newDirs(t)
	spec := netSpec{name: "bt", bridge: "vbr-bt", v4: "192.168.174", policy: "renumber"}
	defineNetwork(t, spec)
	labkit.NewUplink(t, "up-bt", "")
	stopLibvirtd(t)
	t.Cleanup(func() {
		if exec.Command("pgrep", "-x", "libvirtd").Run() != nil {
			startLibvirtd(t)
		}
	})
	t.Setenv("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/run/no-such-bus")
	dm := startDaemon(t, d, writeConfig(t, "[watch]\ndebounce=200ms\ndamping-window=0s\n"))
	time.Sleep(time.Second)
	if dm.exited() {
		t.Fatalf("the daemon exited without libvirtd and the bus:\n%s", strings.Join(dm.lines(), "\n"))
	}
	startLibvirtd(t)
	labkit.Run(t, "ip", "addr", "add", "192.168.174.9/24", "dev", "up-bt")
	movedAway(t, d, "bt", netip.MustParsePrefix("192.168.174.0/24"), 15*time.Second)
}

// exited tells whether the daemon's process has ended.
func (dm *daemon) exited() bool {
	select {
	case <-dm.done:
		return true
	default:
		return false
	}
}

//go:build lab

package e2e

import (
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/vnetguard/vnetguard/scripts/labkit"
)

// liveHost makes the lab look booted by systemd (/run/systemd/system and an
// initialised /etc/machine-id, both private to the lab) for the test.
func liveHost(t *testing.T) {
	t.Helper()
	if _, err := os.Stat("/run/systemd/system"); os.IsNotExist(err) {
		if err := os.MkdirAll("/run/systemd/system", 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Remove("/run/systemd/system"); os.Remove("/run/systemd") })
	}
	if b, err := os.ReadFile("/etc/machine-id"); err != nil || len(strings.TrimSpace(string(b))) != 32 {
		old, had := b, err == nil
		labkit.WriteFile(t, "/etc/machine-id", "0123456789abcdef0123456789abcdef\n", 0o444)
		if had {
			t.Cleanup(func() { os.WriteFile("/etc/machine-id", old, 0o444) })
		}
	}
}

func undefineAtCleanup(t *testing.T, name string) {
	exec.Command("virsh", "-q", "-c", "qemu:///system", "net-destroy", name).Run()
	exec.Command("virsh", "-q", "-c", "qemu:///system", "net-undefine", name).Run()
	t.Cleanup(func() {
		exec.Command("virsh", "-q", "-c", "qemu:///system", "net-destroy", name).Run()
		exec.Command("virsh", "-q", "-c", "qemu:///system", "net-undefine", name).Run()
	})
}

// hostRouteDsts lists the destinations of every IPv4 route in every table.
func hostRouteDsts(t *testing.T) []netip.Prefix {
	out := labkit.Run(t, "ip", "-4", "-o", "route", "show", "table", "all")
	var dsts []netip.Prefix
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		d := f[0]
		if d == "local" || d == "broadcast" || d == "unicast" {
			if len(f) < 2 {
				continue
			}
			d = f[1]
		}
		if d == "default" {
			continue
		}
		if !strings.Contains(d, "/") {
			d += "/32"
		}
		if p, err := netip.ParsePrefix(d); err == nil {
			dsts = append(dsts, p)
		}
	}
	return dsts
}

var definedOn = regexp.MustCompile(`defined network \S+ on (\S+) `)

// Issue 11 item 3: on a live host whose LAN uses 192.168.122.0/24,
// postinstall defines the network on a subnet nothing uses, with the
// renumber policy and autostart; a second run changes nothing; with
// SYSTEMD_OFFLINE=1 it only enables the first-boot unit; the first-boot
// run defines and starts the network and records that it is done.
func TestPkgPostinstallLiveHost(t *testing.T) {
	labkit.Require(t)
	liveHost(t)
	d := newDirs(t)
	const name = "pidef"
	undefineAtCleanup(t, name)
	clashingUplink(t, "pi-up", "192.168.122.77/24")

	r := vnetguard(t, nil, d.flags("postinstall", "--network", name)...)
	m := definedOn.FindStringSubmatch(r.stdout)
	if r.code != 0 || m == nil {
		t.Fatalf("postinstall: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	subnet := netip.MustParsePrefix(m[1])
	if subnet.Overlaps(netip.MustParsePrefix("192.168.122.0/24")) {
		t.Fatalf("picked the clashing %s", subnet)
	}
	for _, dst := range hostRouteDsts(t) {
		if dst.Overlaps(subnet) {
			t.Fatalf("picked %s, which host route %s overlaps", subnet, dst)
		}
	}
	xml := virsh(t, "net-dumpxml", "--inactive", name)
	gw := subnet.Addr().Next().String()
	if !strings.Contains(xml, `on-conflict="renumber"`) && !strings.Contains(xml, `on-conflict='renumber'`) || !strings.Contains(xml, gw) {
		t.Fatalf("definition lacks the policy or %s:\n%s", gw, xml)
	}
	if info := virsh(t, "net-info", name); !regexp.MustCompile(`Autostart:\s+yes`).MatchString(info) {
		t.Errorf("not autostarted:\n%s", info)
	}

	// Twice: nothing changes.
	r = vnetguard(t, nil, d.flags("postinstall", "--network", name)...)
	if r.code != 0 || !strings.Contains(r.stdout, "already defined") {
		t.Fatalf("second run: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	if again := virsh(t, "net-dumpxml", "--inactive", name); again != xml {
		t.Fatalf("second run changed the definition:\n%s\nwas\n%s", again, xml)
	}

	// An offline image build defers to the first boot.
	const later = "pidef2"
	undefineAtCleanup(t, later)
	link := "/etc/systemd/system/multi-user.target.wants/vnetguard-firstboot.service"
	_, had := os.Lstat(link)
	if had != nil {
		t.Cleanup(func() { os.Remove(link) })
	}
	r = vnetguard(t, []string{"SYSTEMD_OFFLINE=1"}, d.flags("postinstall", "--network", later)...)
	if r.code != 0 || !strings.Contains(r.stdout, "deferred: SYSTEMD_OFFLINE=1") {
		t.Fatalf("offline: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	if dst, err := os.Readlink(link); err != nil || dst != "/usr/lib/systemd/system/vnetguard-firstboot.service" {
		t.Fatalf("first-boot unit not enabled: %q %v", dst, err)
	}
	if _, err := labkit.Try("virsh", "-q", "-c", "qemu:///system", "net-info", later); err == nil {
		t.Fatalf("network %s defined in an offline build", later)
	}

	// The first boot: defined and started, and recorded as done.
	r = vnetguard(t, []string{"SYSTEMD_OFFLINE=1"}, d.flags("postinstall", "--first-boot", "--start", "--network", later)...)
	m = definedOn.FindStringSubmatch(r.stdout)
	if r.code != 0 || m == nil {
		t.Fatalf("first boot: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	if second := netip.MustParsePrefix(m[1]); second.Overlaps(subnet) {
		t.Fatalf("first boot picked %s, which %s (network %s) uses", second, subnet, name)
	}
	if info := virsh(t, "net-info", later); !regexp.MustCompile(`Active:\s+yes`).MatchString(info) {
		t.Errorf("not started:\n%s", info)
	}
	if _, err := os.Stat(filepath.Join(d.state, "postinstall.done")); err != nil {
		t.Errorf("first boot not recorded: %v", err)
	}
}

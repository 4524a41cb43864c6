package main

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/vnetguard/vnetguard/netdef"
)

// Issue 11 item 3: an image build or a chroot is recognised by each sign.
func TestPostinstallDeferReason(t *testing.T) {
	live := fstest.MapFS{
		"run/systemd/system": &fstest.MapFile{Mode: os.ModeDir | 0o755},
		"etc/machine-id":     &fstest.MapFile{Data: []byte("0123456789abcdef0123456789abcdef\n")},
	}
	noenv := func(string) string { return "" }
	if why := deferReason(noenv, live); why != "" {
		t.Fatalf("live host deferred: %s", why)
	}
	env := func(k, v string) func(string) string {
		return func(s string) string {
			if s == k {
				return v
			}
			return ""
		}
	}
	if why := deferReason(env("DPKG_ROOT", "/srv/image"), live); !strings.Contains(why, "DPKG_ROOT") {
		t.Errorf("DPKG_ROOT: %q", why)
	}
	if why := deferReason(env("DPKG_ROOT", "/"), live); why != "" {
		t.Errorf("DPKG_ROOT=/ is the live root: %q", why)
	}
	if why := deferReason(env("SYSTEMD_OFFLINE", "1"), live); !strings.Contains(why, "SYSTEMD_OFFLINE") {
		t.Errorf("SYSTEMD_OFFLINE: %q", why)
	}
	noSystemd := fstest.MapFS{"etc/machine-id": live["etc/machine-id"]}
	if why := deferReason(noenv, noSystemd); !strings.Contains(why, "/run/systemd/system") {
		t.Errorf("no systemd: %q", why)
	}
	for _, id := range []string{"", "uninitialized\n"} {
		fsys := fstest.MapFS{"run/systemd/system": live["run/systemd/system"], "etc/machine-id": &fstest.MapFile{Data: []byte(id)}}
		if why := deferReason(noenv, fsys); !strings.Contains(why, "machine-id") {
			t.Errorf("machine-id %q: %q", id, why)
		}
	}
	noID := fstest.MapFS{"run/systemd/system": live["run/systemd/system"]}
	if why := deferReason(noenv, noID); !strings.Contains(why, "machine-id is missing") {
		t.Errorf("no machine-id: %q", why)
	}
}

// Enabling the first-boot unit makes the link systemctl enable would, once.
func TestPostinstallEnableFirstBoot(t *testing.T) {
	root := t.TempDir()
	for i, want := range []bool{true, false} {
		made, err := enableFirstBoot(root)
		if err != nil || made != want {
			t.Fatalf("run %d: made %v, %v; want %v", i, made, err, want)
		}
	}
	dst, err := os.Readlink(filepath.Join(root, "etc/systemd/system/multi-user.target.wants", firstBootUnit))
	if err != nil || dst != "/usr/lib/systemd/system/"+firstBootUnit {
		t.Fatalf("link -> %q, %v", dst, err)
	}
}

// In a chroot (DPKG_ROOT) the command only enables the unit, and says why.
func TestPostinstallDefersUnderDPKGRoot(t *testing.T) {
	root := t.TempDir()
	t.Setenv("DPKG_ROOT", root)
	code, out, errs := runCLI(t, "postinstall")
	if code != exitOK || !strings.Contains(out, "deferred: DPKG_ROOT") || !strings.Contains(out, "enabled "+firstBootUnit) {
		t.Fatalf("exit %d, out %q, err %q", code, out, errs)
	}
	if _, err := os.Lstat(filepath.Join(root, "etc/systemd/system/multi-user.target.wants", firstBootUnit)); err != nil {
		t.Fatal(err)
	}
	if _, out, _ := runCLI(t, "postinstall"); !strings.Contains(out, "already enabled") {
		t.Errorf("second run: %q", out)
	}
	if code, _, _ := runCLI(t, "postinstall", "--network", "bad name"); code != exitError {
		t.Errorf("bad name: exit %d", code)
	}
}

// The network postinstall defines is valid, NATed, DHCP over the subnet,
// with the renumber policy.
func TestDefaultNetworkXML(t *testing.T) {
	for _, s := range []string{"192.168.122.0/24", "192.168.254.0/24", "10.1.0.0/16", "172.16.5.0/28"} {
		p := netip.MustParsePrefix(s)
		x := defaultNetworkXML("default", p)
		d, err := netdef.Parse([]byte(x))
		if err != nil {
			t.Fatalf("%s: %v\n%s", s, err, x)
		}
		if probs := d.Validate(); len(probs) != 0 {
			t.Errorf("%s: %v", s, probs)
		}
		if sub := d.Network.Subnets(); len(sub) != 1 || sub[0] != p {
			t.Errorf("%s: subnets %v", s, sub)
		}
		if !strings.Contains(x, `on-conflict="renumber"`) {
			t.Errorf("%s: no renumber policy", s)
		}
	}
	if got := lastHost(netip.MustParsePrefix("192.168.122.0/24")); got.String() != "192.168.122.254" {
		t.Errorf("lastHost /24 = %s", got)
	}
}

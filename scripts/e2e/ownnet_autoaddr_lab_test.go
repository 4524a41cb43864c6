//go:build lab

package e2e

import (
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vnetguard/vnetguard/netdef"
	"github.com/vnetguard/vnetguard/scripts/labkit"
)

// autoXML is a nat network with autoaddr='yes' and no <ip>.
func autoXML(name, bridge string) string {
	return "<network autoaddr='yes'>\n  <name>" + name + "</name>\n  <forward mode='nat'/>\n  <bridge name='" + bridge +
		"' stp='off' delay='0'/>\n</network>\n"
}

// `net define` of a network with autoaddr='yes' and no <ip> picks free
// subnets (IPv4 from the pools, IPv6 a /64 of the host's ULA /48) and keeps
// them in the stored definition: not the subnet the pool would give first
// (a host address is on it), not another autoaddr network's; `check` finds
// no clash; started, a guest gets a DHCPv4 lease and a SLAAC address in
// them.
func TestOwnNetAutoAddr(t *testing.T) {
	labkit.Require(t)
	o := newOwnNet(t)
	define := func(name, br string) (v4, v6 netip.Prefix) {
		t.Helper()
		r := vnetguard(t, o.env(), o.d.flags("net", "define", writeTemp(t, autoXML(name, br)), "--lock-dir", o.run)...)
		if r.code != 0 {
			t.Fatalf("net define %s exited %d: %s", name, r.code, r.stderr)
		}
		t.Cleanup(func() { vnetguard(t, o.env(), "net", "undefine", name, "--lock-dir", o.run) })
		if !strings.Contains(r.stdout, "autoaddr") {
			t.Errorf("net define does not say what it chose: %q", r.stdout)
		}
		d, err := netdef.ParseFile(filepath.Join(o.dir, name+".xml"))
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range d.Network.Subnets() {
			if s.Addr().Is4() {
				v4 = s
			} else {
				v6 = s
			}
		}
		if !v4.IsValid() || !v6.IsValid() || len(d.Network.IPs) != 2 {
			t.Fatalf("stored definition of %s has subnets %v:\n%s", name, d.Network.Subnets(), d.Raw)
		}
		return v4, v6
	}

	// The first candidate of the pool is taken by a host address.
	first, err := netip.ParsePrefix(strings.TrimSpace(vnetguard(t, nil, o.d.flags("pick")...).stdout))
	if err != nil {
		t.Fatalf("pick: %v", err)
	}
	clashingUplink(t, "clauto", netip.PrefixFrom(first.Addr().Next().Next(), first.Bits()).String())

	a4, a6 := define("ownauto1", "ownbr8")
	b4, b6 := define("ownauto2", "ownbr9")
	t.Logf("chosen: ownauto1 %s %s, ownauto2 %s %s (the pool's first, %s, is on the host)", a4, a6, b4, b6, first)
	ula := readULA(t, o.d)
	for _, p := range []netip.Prefix{a6, b6} {
		if p.Bits() != 64 || !ula.Contains(p.Addr()) {
			t.Errorf("IPv6 subnet %s is not a /64 of the host's ULA %s", p, ula)
		}
	}
	if a4.Overlaps(first) || b4.Overlaps(first) || a4.Overlaps(b4) || a6.Overlaps(b6) {
		t.Fatalf("chosen subnets clash: first %s, %s %s, %s %s", first, a4, a6, b4, b6)
	}
	if r := vnetguard(t, nil, "check", "--network", o.dir); r.code != 0 {
		t.Fatalf("check of the stored definitions exited %d: %s%s", r.code, r.stdout, r.stderr)
	}
	// Defined again from its stored file, a network keeps its subnets.
	stored := filepath.Join(t.TempDir(), "ownauto1.xml")
	labkit.Run(t, "cp", filepath.Join(o.dir, "ownauto1.xml"), stored)
	o.net(t, "define", stored)
	if d, err := netdef.ParseFile(filepath.Join(o.dir, "ownauto1.xml")); err != nil || len(d.Network.Subnets()) != 2 ||
		d.Network.Subnets()[0] != a4 || d.Network.Subnets()[1] != a6 {
		t.Fatalf("redefined ownauto1: %v %v", d, err)
	}

	o.net(t, "start", "ownauto2")
	t.Cleanup(func() { vnetguard(t, o.env(), "net", "stop", "ownauto2", "--lock-dir", o.run) })
	g := labkit.NewGuest(t, "ogauto", "ownbr9")
	t0 := time.Now()
	g.WaitAddr(t, b4, 30*time.Second)
	g.WaitAddr(t, b6, 30*time.Second)
	t.Logf("guest got addresses in %s and %s after %v", b4, b6, time.Since(t0))
	if err := g.Ping(t, b4.Addr().Next()); err != nil {
		t.Fatalf("guest cannot reach its bridge: %v", err)
	}
}

//go:build lab

package e2e

import (
	"encoding/json"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vnetguard/vnetguard/scripts/labkit"
)

// A network whose IPv6 <ip> says <radvd/>: NetworkManager only sets the
// address (ipv6.method=manual) and a radvd that vnetguard runs sends the
// router advertisements; a guest takes a SLAAC address. A clash on the
// prefix renumbers it: radvd is reconfigured and kicked, the guest takes
// an address in the new prefix. net stop stops radvd and removes its files.
// (The network has an IPv4 address too: NetworkManager activates a bridge
// whose only addresses are IPv6 ones only once a port gives it carrier.)
func TestOwnNetRadvd(t *testing.T) {
	labkit.Require(t)
	o := newOwnNet(t)
	const name, br = "ownradvd", "ownbr12"
	old6 := netip.MustParsePrefix("fd42:0:0:9::/64")
	o.define(t, name, `<network>
  <name>ownradvd</name>
  <metadata><vnetguard:policy xmlns:vnetguard="urn:x-vnetguard:policy:1" on-conflict="renumber"/></metadata>
  <forward mode='route'/>
  <bridge name='ownbr12' stp='off' delay='0'/>
  <ip address='10.250.0.1' prefix='24'/>
  <ip family='ipv6' address='fd42:0:0:9::1' prefix='64'><radvd/></ip>
</network>
`)
	o.net(t, "start", name)
	t.Cleanup(func() { vnetguard(t, o.env(), "net", "stop", name, "--lock-dir", o.run) })
	if m := labkit.Run(t, "nmcli", "-g", "ipv6.method", "connection", "show", "vnetguard-"+name); m != "manual\n" {
		t.Fatalf("ipv6.method %q, want manual", m)
	}
	var l []struct{ RA string }
	json.Unmarshal([]byte(o.net(t, "list", "--json")), &l)
	if len(l) != 1 || l[0].RA != "radvd" {
		t.Fatalf("net list: %+v", l)
	}
	radvdDir := filepath.Join(o.run, "radvd")
	pidOf := func() string {
		b, _ := os.ReadFile(filepath.Join(radvdDir, name+".pid"))
		return strings.TrimSpace(string(b))
	}
	labkit.Eventually(t, 5*time.Second, "radvd running", func() bool {
		p := pidOf()
		return p != "" && exec.Command("kill", "-0", p).Run() == nil
	})
	pid := pidOf()
	g := labkit.NewGuest(t, "ogradvd", br)
	t0 := time.Now()
	a := g.WaitAddr(t, old6, 30*time.Second)
	t.Logf("guest took %s from radvd's advertisement after %v", a, time.Since(t0))

	clashingUplink(t, "clradvd", "fd42:0:0:9::5/64")
	r := vnetguard(t, o.env(), o.d.flags("resolve", "--lock-dir", o.run)...)
	if r.code != 0 {
		t.Fatalf("resolve exited %d: %s", r.code, r.stderr)
	}
	new6 := bridgeSubnet6(br)
	if !new6.IsValid() || new6.Overlaps(old6) {
		t.Fatalf("network not moved off %s: bridge has %v", old6, new6)
	}
	conf, _ := os.ReadFile(filepath.Join(radvdDir, name+".conf"))
	if !strings.Contains(string(conf), "prefix "+new6.String()) {
		t.Fatalf("radvd configuration not updated to %s:\n%s", new6, conf)
	}
	if pidOf() != pid {
		t.Fatalf("radvd restarted (pid %s -> %s): a reconfiguration is a SIGHUP", pid, pidOf())
	}
	t1 := time.Now()
	a2 := g.WaitAddr(t, new6, 30*time.Second)
	t.Logf("guest took %s in the new prefix %v after the renumber", a2, time.Since(t1))

	o.net(t, "stop", name)
	if exec.Command("kill", "-0", pid).Run() == nil {
		t.Fatalf("radvd (pid %s) still runs after net stop", pid)
	}
	if ents, _ := os.ReadDir(radvdDir); len(ents) != 0 {
		t.Fatalf("radvd files left: %v", ents)
	}
}

// bridgeSubnet6 is the bridge's global IPv6 subnet as the kernel shows it.
func bridgeSubnet6(br string) netip.Prefix {
	out, _ := labkit.Try("ip", "-6", "-o", "addr", "show", "dev", br, "scope", "global")
	for _, f := range strings.Fields(out) {
		if p, err := netip.ParsePrefix(f); err == nil {
			return p.Masked()
		}
	}
	return netip.Prefix{}
}

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

func globalAddrs(dev string) string {
	out, _ := labkit.Try("ip", "-o", "addr", "show", "dev", dev, "scope", "global")
	return out
}

// A bridged network (<forward mode='bridge'> over a veth uplink to an
// upstream namespace that runs DHCP and router advertisements): the host's
// addressing moves onto the bridge and it keeps its connectivity, a guest
// on the bridge gets its addresses from upstream, the uplink port has no
// address and accept_ra=0; net stop gives the uplink its own profile back.
func TestOwnNetBridged(t *testing.T) {
	labkit.Require(t)
	o := newOwnNet(t)
	const name, upName, br = "ownbridged", "upbr", "brupbr"
	up := labkit.NewUplink(t, upName, "10.249.0.1/24")
	up.Exec(t, "ip", "addr", "add", "fd45::1/64", "dev", up.Router, "nodad")
	dir := t.TempDir()
	dm := exec.Command("ip", "netns", "exec", up.Router, "dnsmasq", "--keep-in-foreground", "--no-resolv", "--port=0",
		"--interface="+up.Router, "--bind-interfaces", "--dhcp-range=10.249.0.100,10.249.0.200,255.255.255.0,1h",
		"--dhcp-range=fd45::,ra-only,64,1h", "--enable-ra", "--dhcp-leasefile="+filepath.Join(dir, "leases"),
		"--pid-file="+filepath.Join(dir, "pid"), "--log-facility="+filepath.Join(dir, "log"))
	if err := dm.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dm.Process.Kill(); dm.Wait() })
	up.NMStatic(t, "10.249.0.2/24")
	upstream := netip.MustParseAddr("10.249.0.1")
	lan4, lan6 := netip.MustParsePrefix("10.249.0.0/24"), netip.MustParsePrefix("fd45::/64")

	o.define(t, name, `<network>
  <name>ownbridged</name>
  <forward mode='bridge'>
    <interface dev='upbr'/>
  </forward>
</network>
`)
	t0 := time.Now()
	o.net(t, "start", name)
	t.Logf("net start took %v", time.Since(t0))
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			vnetguard(t, o.env(), "net", "stop", name, "--lock-dir", o.run)
		}
	})
	if l := o.list(t); len(l) != 1 || !l[0].Active || l[0].Mode != "bridge" || l[0].Bridge != br || len(l[0].Subnets) != 0 {
		t.Fatalf("net list: %+v", l)
	}
	labkit.Eventually(t, 30*time.Second, "the host's DHCPv4 address on "+br, func() bool {
		return strings.Contains(globalAddrs(br), "10.249.0.")
	})
	labkit.Eventually(t, 30*time.Second, "the host's SLAAC address on "+br, func() bool {
		return strings.Contains(globalAddrs(br), "fd45::")
	})
	if _, err := labkit.Try("ping", "-c", "1", "-W", "2", upstream.String()); err != nil {
		t.Fatalf("the host lost upstream through the bridge: %v\n%s", err, globalAddrs(br))
	}
	if a := globalAddrs(upName); a != "" {
		t.Fatalf("uplink port %s still has addresses: %s", upName, a)
	}
	if v, _ := os.ReadFile("/proc/sys/net/ipv6/conf/" + upName + "/accept_ra"); strings.TrimSpace(string(v)) != "0" {
		t.Fatalf("accept_ra on the uplink port: %q, want 0", v)
	}
	if out := labkit.Run(t, "ip", "-o", "link", "show", "dev", upName); !strings.Contains(out, "master "+br) {
		t.Fatalf("uplink not a port of %s: %s", br, out)
	}
	g := labkit.NewGuest(t, "ogbridged", br)
	a4 := g.WaitAddr(t, lan4, 30*time.Second)
	a6 := g.WaitAddr(t, lan6, 30*time.Second)
	t.Logf("guest got %s and %s from upstream", a4, a6)
	if err := g.Ping(t, upstream); err != nil {
		t.Fatalf("guest cannot reach upstream: %v", err)
	}
	if tables := nftTables(t); strings.Contains(tables, "vnetguard") {
		t.Fatalf("a bridged network got firewall rules:\n%s", tables)
	}

	o.net(t, "stop", name)
	stopped = true
	if linkExists(br) {
		t.Fatalf("bridge %s still exists after net stop", br)
	}
	labkit.Eventually(t, 20*time.Second, "the uplink's own address back", func() bool {
		return strings.Contains(globalAddrs(upName), "10.249.0.2/24")
	})
	if act := labkit.Run(t, "nmcli", "-g", "GENERAL.CONNECTION", "device", "show", upName); strings.TrimSpace(act) != upName {
		t.Fatalf("uplink's active profile after net stop: %q, want %q", act, upName)
	}
	if got := vnetguardProfiles(t); len(got) != 1 {
		t.Fatalf("profiles after stop (the bridge's only): %v", got)
	}
}

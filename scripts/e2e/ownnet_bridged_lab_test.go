//go:build lab

package e2e

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
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
	o := bridgedLab(t)
	const name, upName, br = "ownbridged", "upbr", "brupbr"
	upstream := netip.MustParseAddr("10.249.0.1")
	lan4, lan6 := netip.MustParsePrefix("10.249.0.0/24"), netip.MustParsePrefix("fd45::/64")
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

// bridgedLab makes an uplink "upbr" to an upstream namespace that runs DHCP
// (10.249.0.0/24) and router advertisements (fd45::/64), gives the uplink a
// NetworkManager profile of its own (10.249.0.2/24), and defines the
// bridged network "ownbridged" over it.
func bridgedLab(t *testing.T) ownNet {
	o := newOwnNet(t)
	up := labkit.NewUplink(t, "upbr", "10.249.0.1/24")
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
	o.define(t, "ownbridged", `<network>
  <name>ownbridged</name>
  <forward mode='bridge'>
    <interface dev='upbr'/>
  </forward>
</network>
`)
	return o
}

// kill -9 of `net start` of a bridged network at each of its
// NetworkManager calls that change something (the moment the system bus
// shows the call: the port profile added, the bridge activated) and at
// spread points, then one pass (net list): the network either runs whole
// (the uplink a port of the bridge with accept_ra=0, the host's address on
// the bridge) or is stopped with the uplink on its own profile and
// address, never in between; net stop then always gives the uplink back.
func TestOwnNetBridgedKillNine(t *testing.T) {
	labkit.Require(t)
	o := bridgedLab(t)
	const name, upName, br = "ownbridged", "upbr", "brupbr"
	runs := 5
	if v, err := strconv.Atoi(os.Getenv("VNETGUARD_FAULT_RUNS")); err == nil && v > 0 {
		runs = v
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 11))
	ownProfile := func() bool {
		act, _ := labkit.Try("nmcli", "-g", "GENERAL.CONNECTION", "device", "show", upName)
		return strings.TrimSpace(act) == upName && strings.Contains(globalAddrs(upName), "10.249.0.2/24")
	}
	var outcomes []string
	attempt := func(label string, kill func(cmd *exec.Cmd) bool) {
		cmd := exec.Command(vnetguardBin, "net", "start", name, "--lock-dir", o.run)
		cmd.Env = append(os.Environ(), o.env()...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if !kill(cmd) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("%s: the kill point never came", label)
		}
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		o.list(t) // a pass: finishes or undoes the start
		var outcome string
		labkit.Eventually(t, 30*time.Second, label+": a whole bridged network or the uplink on its own profile", func() bool {
			l := o.list(t)
			link, _ := labkit.Try("ip", "-o", "link", "show", "dev", upName)
			ra, _ := os.ReadFile("/proc/sys/net/ipv6/conf/" + upName + "/accept_ra")
			switch {
			case l[0].Active && strings.Contains(link, "master "+br) && strings.TrimSpace(string(ra)) == "0" &&
				strings.Contains(globalAddrs(br), "10.249.0.") && globalAddrs(upName) == "":
				outcome = "running"
			case !l[0].Active && !linkExists(br) && ownProfile() && len(vnetguardProfiles(t)) == 1:
				outcome = "stopped"
			default:
				return false
			}
			return true
		})
		outcomes = append(outcomes, label+": "+outcome)
		o.net(t, "stop", name)
		labkit.Eventually(t, 20*time.Second, "the uplink's own profile back after net stop", ownProfile)
	}
	for _, step := range []string{"AddConnection2", "ActivateConnection"} {
		mon := labkit.MonitorBus(t, labkit.NMCalls)
		attempt("killed at "+step, func(cmd *exec.Cmd) bool {
			_, ok := mon.WaitCall(cmd.Process.Pid, step, 20*time.Second)
			return ok
		})
	}
	for i := range runs {
		// Spread over the start, denser early where its steps are (the
		// rest is waiting for DHCP), with some jitter.
		delay := time.Duration(i*i*2500/(runs*runs)+rng.IntN(50)) * time.Millisecond
		attempt(fmt.Sprintf("killed after %v", delay), func(*exec.Cmd) bool {
			time.Sleep(delay)
			return true
		})
	}
	t.Logf("outcomes after the next pass: %v", outcomes)
}

//go:build lab

package e2e

import (
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vnetguard/vnetguard/scripts/labkit"
)

// installedDirs are the cache and state directories a hook run by
// NetworkManager uses: the installed paths, throwaway tmpfs mounts in the lab.
var installedDirs = dirs{cache: "/var/cache/vnetguard", state: "/var/lib/vnetguard"}

// liveV4 is the network's live IPv4 subnet as libvirt has it now, read once.
func liveV4(t *testing.T, name string) netip.Prefix {
	t.Helper()
	p := liveSubnetQuiet(installedDirs, name, true)
	if !p.IsValid() {
		t.Fatalf("network %s has no live IPv4 subnet", name)
	}
	return p
}

// The environment is a hint, netlink the truth: an address and a route that
// only the dispatcher's environment claims, clashing with a running network,
// move nothing, whatever the action. The same address put on the host
// does.
func TestHookActsOnNetlinkNotEnvironment(t *testing.T) {
	labkit.Require(t)
	spec := netSpec{name: "hn", bridge: "vbr-hn", v4: "192.168.181", policy: "renumber"}
	defineNetwork(t, spec)
	old := netip.MustParsePrefix("192.168.181.0/24")
	labkit.NewUplink(t, "up-hn", "")
	hook := filepath.Join(t.TempDir(), "90-vnetguard")
	if err := os.Symlink(vnetguardBin, hook); err != nil {
		t.Fatal(err)
	}
	run := func(action string, env ...string) string {
		t.Helper()
		cmd := exec.Command(hook, "up-hn", action)
		cmd.Env = append([]string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "NM_DISPATCHER_ACTION=" + action,
			"DEVICE_IFACE=up-hn", "DEVICE_IP_IFACE=up-hn", "CONNECTION_ID=hostile"}, env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("hook %s: %v: %s", action, err, out)
		}
		t.Logf("hook %s:\n%s", action, out)
		return string(out)
	}
	claim := []string{"IP4_NUM_ADDRESSES=1", "IP4_ADDRESS_0=192.168.181.50/24 192.168.181.254",
		"IP4_NUM_ROUTES=1", "IP4_ROUTE_0=192.168.181.0/24 0.0.0.0 100"}
	vpnClaim := []string{"VPN_IP_IFACE=up-hn", "VPN_IP4_NUM_ADDRESSES=1", "VPN_IP4_ADDRESS_0=192.168.181.50/24 0.0.0.0",
		"VPN_IP4_NUM_ROUTES=1", "VPN_IP4_ROUTE_0=192.168.181.0/24 0.0.0.0 50"}
	for _, c := range []struct {
		action string
		env    []string
	}{
		{"up", claim}, {"dhcp4-change", claim}, {"reapply", claim}, {"pre-up", claim},
		{"vpn-up", vpnClaim}, {"vpn-pre-up", vpnClaim},
	} {
		out := run(c.action, c.env...)
		if !strings.Contains(out, "does not have; ignoring it") || !strings.Contains(out, "192.168.181.50/24") {
			t.Errorf("%s: the hook did not report the unconfirmed address", c.action)
		}
		if got := liveV4(t, spec.name); got != old {
			t.Fatalf("%s: an address only the environment claims moved the network to %s", c.action, got)
		}
	}
	if st := status(t, installedDirs, spec.name); st.LastAction != nil {
		t.Fatalf("the environment caused an action: %+v", st.LastAction)
	}

	// The same address on the host: the hook acts.
	labkit.Run(t, "ip", "addr", "add", "192.168.181.50/24", "dev", "up-hn")
	out := run("up", claim...)
	if strings.Contains(out, "ignoring it") {
		t.Errorf("an address on the host reported as unconfirmed")
	}
	if got := liveV4(t, spec.name); got.Overlaps(old) {
		t.Fatalf("the clash on the host did not move the network (still %s)", got)
	}
}

// pre-up: installed in dispatcher.d/pre-up.d, the hook moves a clashing
// network before `nmcli connection up` returns (NetworkManager waits for
// pre-up scripts before it reports the connection activated). A recorder
// script before it shows what NetworkManager 1.42 has done by then: the
// address is applied (netlink shows it), and the environment has no IP4_*
// variables.
func TestHookPreUpMovesNetworkBeforeConnectionUp(t *testing.T) {
	labkit.Require(t)
	spec := netSpec{name: "hp", bridge: "vbr-hp", v4: "192.168.182", policy: "renumber"}
	defineNetwork(t, spec)
	old := netip.MustParsePrefix("192.168.182.0/24")

	rec := t.TempDir()
	labkit.WriteFile(t, "/etc/NetworkManager/dispatcher.d/pre-up.d/10-record", `#!/bin/sh
[ "$1" = up-hp ] || exit 0
env >`+rec+`/env
ip -4 -o addr show dev "$1" >`+rec+`/addr
ip -4 route show table all dev "$1" >`+rec+`/routes
`, 0o755)
	dispatcherHook(t, "/etc/NetworkManager/dispatcher.d/pre-up.d/90-vnetguard")

	start := time.Now()
	nmUplink(t, "up-hp", "192.168.182.254/24", "192.168.182.50/24")
	took := time.Since(start)
	// Read once, at once: no post-up hook and no daemon run here, so only
	// the pre-up hook can have moved it.
	now := liveV4(t, spec.name)
	if now.Overlaps(old) {
		t.Fatalf("network still on %s when nmcli connection up returned (after %v)", now, took.Round(time.Millisecond))
	}
	t.Logf("moved to %s before the connection was reported up (nmcli took %v)", now, took.Round(time.Millisecond))

	env, _ := os.ReadFile(filepath.Join(rec, "env"))
	addr, _ := os.ReadFile(filepath.Join(rec, "addr"))
	routes, _ := os.ReadFile(filepath.Join(rec, "routes"))
	t.Logf("at pre-up: addresses %q routes %q", addr, routes)
	if !strings.Contains(string(env), "NM_DISPATCHER_ACTION=pre-up\n") {
		t.Fatalf("the pre-up.d recorder did not run for pre-up:\n%s", env)
	}
	if !strings.Contains(string(addr), "192.168.182.50/24") {
		t.Errorf("NetworkManager had not applied the address at pre-up: %q", addr)
	}
	if !strings.Contains(string(routes), "192.168.182.0/24") {
		t.Errorf("NetworkManager had not applied the prefix route at pre-up: %q", routes)
	}
	if strings.Contains(string(env), "IP4_ADDRESS_0=") {
		t.Errorf("pre-up carried IP4_ variables after all (then the documentation is wrong):\n%s", env)
	}
	// The host reaches the LAN's router: the network no longer shadows it.
	labkit.Run(t, "ping", "-c", "1", "-W", "2", "192.168.182.254")
}

// With the listener daemon running (its doorbell at the installed path),
// the pre-up hook still resolves by itself rather than ringing and
// returning, so the network has moved before the connection is up; the
// daemon, seeing the same address, finds nothing left to do.
func TestHookPreUpWithDaemonRunning(t *testing.T) {
	labkit.Require(t)
	dm := startDaemonAt(t, newDirs(t), writeConfig(t, daemonConfig), "/run/vnetguard/wake.sock")
	spec := netSpec{name: "hq", bridge: "vbr-hq", v4: "192.168.183", policy: "renumber"}
	defineNetwork(t, spec)
	old := netip.MustParsePrefix("192.168.183.0/24")
	dispatcherHook(t, "/etc/NetworkManager/dispatcher.d/pre-up.d/90-vnetguard")

	nmUplink(t, "up-hq", "192.168.183.254/24", "192.168.183.50/24")
	if now := liveV4(t, spec.name); now.Overlaps(old) {
		t.Fatalf("network still on %s when nmcli connection up returned", now)
	}
	time.Sleep(time.Second) // let the daemon's pass run
	if n := dm.count("renumbered virtual network", "network=hq"); n > 0 {
		t.Logf("the daemon moved it (won the lock)")
	}
	if got := liveV4(t, spec.name); got.Overlaps(old) {
		t.Fatalf("network back on %s", got)
	}
}

// `make install` puts the hook where NetworkManager looks (in the lab's
// private /usr): both links, in dispatcher.d and in dispatcher.d/pre-up.d,
// resolve to the installed binary, which knows itself by the link's name;
// a clashing connection then finds the network moved when it comes up.
func TestMakeInstallHookRunsAtPreUp(t *testing.T) {
	labkit.Require(t)
	_, self, _, _ := runtime.Caller(0)
	repo := filepath.Dir(filepath.Dir(filepath.Dir(self)))
	const hooks = "/usr/lib/NetworkManager/dispatcher.d"
	bin := filepath.Join(t.TempDir(), "vnetguard")
	make := func(target string) {
		t.Helper()
		cmd := exec.Command("make", "-C", repo, target, "BIN="+bin)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("make %s: %v\n%s", target, err, out)
		}
	}
	make("install")
	t.Cleanup(func() {
		make("uninstall")
		os.Remove("/etc/vnetguard/vnetguard.conf")
	})
	for _, link := range []string{hooks + "/90-vnetguard", hooks + "/pre-up.d/90-vnetguard"} {
		if dst, err := filepath.EvalSymlinks(link); err != nil || dst != "/usr/bin/vnetguard" {
			t.Fatalf("%s -> %q, %v; want the installed binary", link, dst, err)
		}
	}
	// Started by the pre-up.d link's name, with no command: the hook.
	cmd := exec.Command(hooks+"/pre-up.d/90-vnetguard", "lo", "hostname")
	if out, err := cmd.CombinedOutput(); err != nil || len(out) != 0 {
		t.Fatalf("the pre-up.d link is not taken for the hook: %v: %s", err, out)
	}

	spec := netSpec{name: "hi", bridge: "vbr-hi", v4: "192.168.184", policy: "renumber"}
	defineNetwork(t, spec)
	old := netip.MustParsePrefix("192.168.184.0/24")
	nmUplink(t, "up-hi", "192.168.184.254/24", "192.168.184.50/24")
	if now := liveV4(t, spec.name); now.Overlaps(old) {
		t.Fatalf("network still on %s when nmcli connection up returned", now)
	}
}

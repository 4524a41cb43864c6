//go:build lab

package e2e

import (
	"net/netip"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vnetguard/vnetguard/scripts/labkit"
)

// nmUplink brings prefix onto a fresh uplink through a NetworkManager
// connection, as a hotel Wi-Fi or a LAN would.
func nmUplink(t *testing.T, name, routerCIDR, hostCIDR string) {
	t.Helper()
	labkit.NewUplink(t, name, routerCIDR)
	labkit.Run(t, "nmcli", "device", "set", name, "managed", "yes")
	labkit.Run(t, "nmcli", "connection", "add", "type", "ethernet", "ifname", name, "con-name", name,
		"ipv4.method", "manual", "ipv4.addresses", hostCIDR, "ipv6.method", "disabled", "connection.autoconnect", "no")
	t.Cleanup(func() { exec.Command("nmcli", "connection", "delete", name).Run() })
	labkit.Run(t, "nmcli", "--wait", "20", "connection", "up", name)
}

func TestRenumberKeepsGuestConnected(t *testing.T) {
	labkit.Require(t)
	d := newDirs(t)
	spec := netSpec{name: "rn", bridge: "vbr-rn", v4: "192.168.150", policy: "renumber"}
	defineNetwork(t, spec)
	defined := virsh(t, "net-dumpxml", "--inactive", spec.name)
	g := labkit.NewGuest(t, "g-rn", spec.bridge)
	old := netip.MustParsePrefix("192.168.150.0/24")
	g.WaitAddr(t, old, 30*time.Second)

	nmUplink(t, "up-rn", "192.168.150.254/24", "192.168.150.50/24")
	if r := vnetguard(t, nil, "check", "--network", writeTemp(t, defined)); r.code != 1 {
		t.Fatalf("check should see the clash, exit %d", r.code)
	}
	r := vnetguard(t, nil, d.flags("resolve")...)
	if r.code != 0 || !strings.Contains(r.stdout, "rn: renumber") {
		t.Fatalf("resolve: exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	moved := liveSubnet(t, d, spec.name, true)
	if moved.Overlaps(old) {
		t.Fatalf("network still on %s", moved)
	}
	addr := g.WaitAddr(t, moved, 30*time.Second)
	if err := g.Ping(t, bridgeAddr(moved)); err != nil {
		t.Fatalf("guest %s cannot reach the bridge %s: %v", addr, bridgeAddr(moved), err)
	}
	// The host reaches the LAN router again: no competing route left.
	labkit.Run(t, "ping", "-c", "1", "-W", "2", "192.168.150.254")
	if after := virsh(t, "net-dumpxml", "--inactive", spec.name); after != defined {
		t.Fatalf("persistent definition changed:\nbefore:\n%s\nafter:\n%s", defined, after)
	}
	st := status(t, d, spec.name)
	if st.LastAction == nil || st.LastAction.Action != "renumber" || len(st.Conflicts) != 0 {
		t.Fatalf("status after renumber: %+v", st)
	}
}

func TestRenumberIPv6MovesToNewULA(t *testing.T) {
	labkit.Require(t)
	d := newDirs(t)
	spec := netSpec{name: "rn6", bridge: "vbr-rn6", v4: "192.168.151", v6: "fd11:2233:4455:1", policy: "renumber"}
	defineNetwork(t, spec)
	g := labkit.NewGuest(t, "g-rn6", spec.bridge)
	old6 := netip.MustParsePrefix("fd11:2233:4455:1::/64")
	g.WaitAddr(t, old6, 30*time.Second)

	labkit.NewUplink(t, "up-rn6", "fd11:2233:4455:1::fe/64")
	labkit.Run(t, "ip", "-6", "addr", "add", "fd11:2233:4455:1::50/64", "dev", "up-rn6", "nodad")
	r := vnetguard(t, nil, d.flags("resolve")...)
	if r.code != 0 {
		t.Fatalf("resolve: exit %d", r.code)
	}
	moved := liveSubnet(t, d, spec.name, false)
	if moved.Bits() != 64 || moved.Overlaps(old6) {
		t.Fatalf("IPv6 subnet not moved to a new /64: %s", moved)
	}
	ula := readULA(t, d)
	if !ula.Overlaps(moved) {
		t.Fatalf("new subnet %s is not inside the host's ULA %s", moved, ula)
	}
	// libvirt's router advertisements give the guest a SLAAC address in the
	// new prefix.
	g.WaitAddr(t, moved, 30*time.Second)
	if v4 := liveSubnet(t, d, spec.name, true); v4 != netip.MustParsePrefix("192.168.151.0/24") {
		t.Fatalf("the IPv4 subnet did not clash but moved to %s", v4)
	}
}

func TestDestroyPolicy(t *testing.T) {
	labkit.Require(t)
	d := newDirs(t)
	spec := netSpec{name: "ds", bridge: "vbr-ds", v4: "192.168.152", policy: "destroy"}
	defineNetwork(t, spec)
	clashingUplink(t, "up-ds", "192.168.152.50/24")
	if r := vnetguard(t, nil, d.flags("resolve")...); r.code != 0 || !strings.Contains(r.stdout, "ds: destroy") {
		t.Fatalf("resolve: %+v", r)
	}
	st := status(t, d, spec.name)
	if st.Active || st.LastAction == nil || st.LastAction.Action != "destroy" {
		t.Fatalf("network not destroyed: %+v", st)
	}
	if !strings.Contains(virsh(t, "net-list", "--inactive", "--name"), spec.name) {
		t.Fatal("definition lost: destroy must only stop the network")
	}
}

func TestDefaultPolicyIsDestroy(t *testing.T) {
	labkit.Require(t)
	d := newDirs(t)
	spec := netSpec{name: "np", bridge: "vbr-np", v4: "192.168.153"}
	defineNetwork(t, spec)
	clashingUplink(t, "up-np", "192.168.153.50/24")
	vnetguard(t, nil, d.flags("resolve")...)
	if st := status(t, d, spec.name); st.Active || st.Policy != "destroy" {
		t.Fatalf("network without policy not destroyed: %+v", st)
	}
}

func TestWarnPolicy(t *testing.T) {
	labkit.Require(t)
	d := newDirs(t)
	spec := netSpec{name: "wn", bridge: "vbr-wn", v4: "192.168.154", policy: "warn"}
	defineNetwork(t, spec)
	before := virsh(t, "net-dumpxml", spec.name)
	clashingUplink(t, "up-wn", "192.168.154.50/24")
	r := vnetguard(t, nil, d.flags("resolve")...)
	if r.code != 1 || !strings.Contains(r.stdout, "wn: warn") || !strings.Contains(r.stderr, "wn") {
		t.Fatalf("resolve: %+v", r)
	}
	st := status(t, d, spec.name)
	if !st.Active || len(st.Conflicts) == 0 || st.LastAction == nil || st.LastAction.Action != "warn" {
		t.Fatalf("warn status: %+v", st)
	}
	if after := virsh(t, "net-dumpxml", spec.name); after != before {
		t.Fatal("warn changed the live network")
	}
}

func TestRememberedSubnetReusedAfterRestart(t *testing.T) {
	labkit.Require(t)
	d := newDirs(t)
	spec := netSpec{name: "rm", bridge: "vbr-rm", v4: "192.168.155", policy: "renumber"}
	defineNetwork(t, spec)
	labkit.NewUplink(t, "up-rm", "")
	// A /25 inside the network's /24: libvirt's own start-time check looks
	// for an exact match only, so the network still starts onto the clash.
	labkit.Run(t, "ip", "addr", "add", "192.168.155.130/25", "dev", "up-rm")
	vnetguard(t, nil, d.flags("resolve", "--hypervisor", "yes")...)
	first := liveSubnet(t, d, spec.name, true)
	// Restarted from its definition, the network lands on the clash again
	// and must go back to where it went before — even though a pool walk
	// would now find another subnet first.
	virsh(t, "net-destroy", spec.name)
	virsh(t, "net-start", spec.name)
	if got := liveSubnet(t, d, spec.name, true); got != netip.MustParsePrefix("192.168.155.0/24") {
		t.Fatalf("restart did not start from the definition: %s", got)
	}
	// Counting the other way, a fresh walk would pick another subnet.
	vnetguard(t, nil, d.flags("resolve", "--hypervisor", "no")...)
	if got := liveSubnet(t, d, spec.name, true); got != first {
		t.Fatalf("remembered subnet %s not reused, got %s", first, got)
	}
}

func TestNoConflictUntouched(t *testing.T) {
	labkit.Require(t)
	d := newDirs(t)
	spec := netSpec{name: "nc", bridge: "vbr-nc", v4: "192.168.156", policy: "renumber"}
	defineNetwork(t, spec)
	g := labkit.NewGuest(t, "g-nc", spec.bridge)
	g.WaitAddr(t, netip.MustParsePrefix("192.168.156.0/24"), 30*time.Second)
	before := virsh(t, "net-dumpxml", spec.name)
	ports := labkit.Run(t, "ip", "-br", "link", "show", "master", spec.bridge)
	r := vnetguard(t, nil, d.flags("resolve")...)
	if r.code != 0 || strings.Contains(r.stdout, "nc:") {
		t.Fatalf("resolve touched a quiet network: %+v", r)
	}
	if after := virsh(t, "net-dumpxml", spec.name); after != before {
		t.Fatal("live XML changed")
	}
	if after := labkit.Run(t, "ip", "-br", "link", "show", "master", spec.bridge); after != ports {
		t.Fatalf("bridge ports changed: %q -> %q", ports, after)
	}
}

func TestPolicyRoutingTableClash(t *testing.T) {
	labkit.Require(t)
	d := newDirs(t)
	spec := netSpec{name: "pr", bridge: "vbr-pr", v4: "192.168.157", policy: "renumber"}
	defineNetwork(t, spec)
	labkit.NewUplink(t, "up-pr", "10.200.0.1/24")
	labkit.Run(t, "ip", "addr", "add", "10.200.0.2/24", "dev", "up-pr")
	// As wg-quick does: a route in its own table, selected by a rule.
	labkit.Run(t, "ip", "route", "add", "192.168.128.0/17", "via", "10.200.0.1", "dev", "up-pr", "table", "51820")
	labkit.Run(t, "ip", "rule", "add", "to", "192.168.128.0/17", "lookup", "51820", "priority", "3000")
	t.Cleanup(func() { exec.Command("ip", "rule", "del", "priority", "3000").Run() })
	st := status(t, d, spec.name)
	if len(st.Conflicts) == 0 || !strings.Contains(string(st.Conflicts[0]), "51820") {
		t.Fatalf("clash through table 51820 not seen: %+v", st)
	}
	vnetguard(t, nil, d.flags("resolve")...)
	if got := liveSubnet(t, d, spec.name, true); got.Overlaps(netip.MustParsePrefix("192.168.128.0/17")) {
		t.Fatalf("still inside the VPN's range: %s", got)
	}
}

func TestConcurrentResolvesActOnce(t *testing.T) {
	labkit.Require(t)
	d := newDirs(t)
	spec := netSpec{name: "cc", bridge: "vbr-cc", v4: "192.168.158", policy: "renumber"}
	defineNetwork(t, spec)
	clashingUplink(t, "up-cc", "192.168.158.50/24")
	var wg sync.WaitGroup
	results := make([]result, 2)
	for i := range results {
		wg.Add(1)
		go func() { defer wg.Done(); results[i] = vnetguard(t, nil, d.flags("resolve")...) }()
	}
	wg.Wait()
	renumbered := 0
	for _, r := range results {
		if r.code != 0 {
			t.Fatalf("a concurrent resolve failed: %+v", r)
		}
		if strings.Contains(r.stdout, "cc: renumber") {
			renumbered++
		}
	}
	if renumbered != 1 {
		t.Fatalf("network renumbered %d times, want once: %+v", renumbered, results)
	}
	st := status(t, d, spec.name)
	if !st.Active || len(st.Conflicts) != 0 || len(st.LastAction.Moves) != 1 {
		t.Fatalf("after concurrent resolves: %+v", st)
	}
}

func TestLibvirtAbsentIsAClearErrorAndChangesNothing(t *testing.T) {
	labkit.Require(t)
	d := newDirs(t)
	spec := netSpec{name: "ab", bridge: "vbr-ab", v4: "192.168.159", policy: "renumber"}
	defineNetwork(t, spec)
	clashingUplink(t, "up-ab", "192.168.159.50/24")
	before := virsh(t, "net-dumpxml", spec.name)

	// libvirtd itself stopped.
	stopLibvirtd(t)
	r := vnetguard(t, nil, d.flags("resolve")...)
	startLibvirtd(t)
	if r.code != 2 || !strings.Contains(r.stderr, "libvirt") || !strings.Contains(r.stderr, "nothing was changed") {
		t.Fatalf("no libvirtd: %+v", r)
	}
	if after := virsh(t, "net-dumpxml", spec.name); after != before {
		t.Fatal("network changed while libvirt was unreachable")
	}
}

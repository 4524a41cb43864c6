//go:build lab

// Tests against the lab's real libvirtd (9.0 on Debian 12):
//
//	scripts/lab run --default-net -- go test -tags lab -count=1 -v ./netdef/libvirt/rpc/
package rpc_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	libvirt "github.com/digitalocean/go-libvirt"

	"github.com/vnetguard/vnetguard/netdef/libvirt/rpc"
	"github.com/vnetguard/vnetguard/scripts/labkit"
)

func dial(t *testing.T, opts ...rpc.Option) *rpc.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := rpc.Dial(ctx, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return c
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// netXML is a small routed-nowhere network on its own bridge (vbr-*: left
// alone by the lab's NetworkManager).
func netXML(name, uuid, bridge, cidr3 string) string {
	u := ""
	if uuid != "" {
		u = "<uuid>" + uuid + "</uuid>"
	}
	return fmt.Sprintf(`<network>
  <name>%s</name>%s
  <bridge name='%s' stp='off'/>
  <ip address='%s.1' netmask='255.255.255.0'/>
</network>
`, name, u, bridge, cidr3)
}

// removeNetwork destroys and undefines name at cleanup, whatever state the
// test left it in.
func removeNetwork(t *testing.T, name string) {
	t.Cleanup(func() {
		labkit.Try("virsh", "net-destroy", name)
		labkit.Try("virsh", "net-undefine", name)
	})
}

func virshDefine(t *testing.T, xml string) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "net.xml")
	if err := os.WriteFile(f, []byte(xml), 0o644); err != nil {
		t.Fatal(err)
	}
	labkit.Run(t, "virsh", "-q", "net-define", f)
}

func find(nets []rpc.Network, name string) (rpc.Network, bool) {
	i := slices.IndexFunc(nets, func(n rpc.Network) bool { return n.Name == name })
	if i < 0 {
		return rpc.Network{}, false
	}
	return nets[i], true
}

func TestLabNetworks(t *testing.T) {
	labkit.Require(t)
	labkit.DefaultNetwork(t)
	ctx := testCtx(t)
	c := dial(t)

	removeNetwork(t, "vg-rpc-inactive")
	virshDefine(t, netXML("vg-rpc-inactive", "", "vbr-rpcin", "10.77.1"))
	labkit.Run(t, "virsh", "-q", "net-autostart", "vg-rpc-inactive")
	removeNetwork(t, "vg-rpc-transient")
	if err := c.CreateNetworkXML(ctx, netXML("vg-rpc-transient", "", "vbr-rpctr", "10.77.2")); err != nil {
		t.Fatal(err)
	}

	nets, err := c.Networks(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []struct {
		name                          string
		active, persistent, autostart bool
	}{
		{"default", true, true, false},
		{"vg-rpc-inactive", false, true, true},
		{"vg-rpc-transient", true, false, false},
	} {
		n, ok := find(nets, want.name)
		if !ok {
			t.Errorf("%s not listed", want.name)
			continue
		}
		if n.Active != want.active || n.Persistent != want.persistent || n.Autostart != want.autostart {
			t.Errorf("%s: active %v persistent %v autostart %v, want %v %v %v", n.Name,
				n.Active, n.Persistent, n.Autostart, want.active, want.persistent, want.autostart)
		}
		if !strings.Contains(n.LiveXML, "<name>"+n.Name+"</name>") || !strings.Contains(n.LiveXML, "<uuid>"+n.UUID+"</uuid>") {
			t.Errorf("%s (%s): LiveXML is not its XML:\n%s", n.Name, n.UUID, n.LiveXML)
		}
		if (n.DefinedXML != "") != n.Persistent {
			t.Errorf("%s: DefinedXML %q for persistent=%v", n.Name, n.DefinedXML, n.Persistent)
		}
		if uuid := strings.TrimSpace(labkit.Run(t, "virsh", "net-uuid", n.Name)); uuid != n.UUID {
			t.Errorf("%s: UUID %s, virsh says %s", n.Name, n.UUID, uuid)
		}
	}
	if len(nets) != 3 {
		t.Errorf("listed %d networks, want 3", len(nets))
	}

	// Without withDefined, no DefinedXML.
	if n, err := c.Network(ctx, "default", false); err != nil || n.DefinedXML != "" || !n.Active {
		t.Errorf("Network(default, false): %+v, %v", n, err)
	}
	_, err = c.Network(ctx, "vg-rpc-nope", true)
	if !errors.Is(err, rpc.ErrNotFound) {
		t.Errorf("Network(nope): %v, want ErrNotFound", err)
	}
	var lerr libvirt.Error
	if !errors.As(err, &lerr) || libvirt.ErrorNumber(lerr.Code) != libvirt.ErrNoNetwork {
		t.Errorf("Network(nope): %v, want VIR_ERR_NO_NETWORK underneath", err)
	}
}

func TestLabDestroyIdempotent(t *testing.T) {
	labkit.Require(t)
	ctx := testCtx(t)
	c := dial(t)

	removeNetwork(t, "vg-rpc-persist")
	virshDefine(t, netXML("vg-rpc-persist", "", "vbr-rpcpe", "10.77.3"))
	labkit.Run(t, "virsh", "-q", "net-start", "vg-rpc-persist")
	for i := 0; i < 2; i++ {
		if err := c.DestroyNetwork(ctx, "vg-rpc-persist"); err != nil {
			t.Fatalf("destroy %d of a persistent network: %v", i+1, err)
		}
	}
	if n, err := c.Network(ctx, "vg-rpc-persist", false); err != nil || n.Active {
		t.Errorf("after destroy: %+v, %v", n, err)
	}

	removeNetwork(t, "vg-rpc-trans")
	if err := c.CreateNetworkXML(ctx, netXML("vg-rpc-trans", "", "vbr-rpctr2", "10.77.4")); err != nil {
		t.Fatal(err)
	}
	if err := c.DestroyNetwork(ctx, "vg-rpc-trans"); err != nil {
		t.Fatal(err)
	}
	// A destroyed transient network is gone.
	if err := c.DestroyNetwork(ctx, "vg-rpc-trans"); !errors.Is(err, rpc.ErrNotFound) {
		t.Errorf("destroying a vanished transient network: %v, want ErrNotFound", err)
	}
	if err := c.DestroyNetwork(ctx, "vg-rpc-nope"); !errors.Is(err, rpc.ErrNotFound) {
		t.Errorf("destroying an unknown network: %v, want ErrNotFound", err)
	}
}

// Defining and creating, and the renumber move: a defined network run with
// other addresses keeps its definition.
func TestLabCreateDefine(t *testing.T) {
	labkit.Require(t)
	ctx := testCtx(t)
	c := dial(t)
	const name, uuid = "vg-rpc-def", "7b0c2f4e-6a1d-4c3b-9e8f-0a1b2c3d4e5f"
	removeNetwork(t, name)

	old, renumbered := netXML(name, uuid, "vbr-rpcdef", "10.77.5"), netXML(name, uuid, "vbr-rpcdef", "10.77.6")
	for i := 0; i < 2; i++ { // defining the same again is fine
		if err := c.DefineNetworkXML(ctx, old); err != nil {
			t.Fatal(err)
		}
	}
	n, err := c.Network(ctx, name, true)
	if err != nil || n.Active || !n.Persistent || n.UUID != uuid {
		t.Fatalf("defined: %+v, %v", n, err)
	}
	if err := c.CreateNetworkXML(ctx, renumbered); err != nil {
		t.Fatal(err)
	}
	n, err = c.Network(ctx, name, true)
	if err != nil || !n.Active || !n.Persistent {
		t.Fatalf("created: %+v, %v", n, err)
	}
	if !strings.Contains(n.LiveXML, "10.77.6.1") || !strings.Contains(n.DefinedXML, "10.77.5.1") {
		t.Errorf("live XML should run 10.77.6.1 and the definition keep 10.77.5.1:\nlive:\n%s\ndefined:\n%s", n.LiveXML, n.DefinedXML)
	}
	if out := labkit.Run(t, "ip", "-4", "-o", "addr", "show", "dev", "vbr-rpcdef"); !strings.Contains(out, "10.77.6.1/24") {
		t.Errorf("bridge: %s", out)
	}

	// Creating it again while it runs: libvirt's VIR_ERR_OPERATION_INVALID,
	// an answer (the Conn stays usable), not "not found".
	err = c.CreateNetworkXML(ctx, renumbered)
	var lerr libvirt.Error
	if !errors.As(err, &lerr) || libvirt.ErrorNumber(lerr.Code) != libvirt.ErrOperationInvalid ||
		errors.Is(err, rpc.ErrNotFound) || errors.Is(err, rpc.ErrNoReply) {
		t.Errorf("create while active: %v, want VIR_ERR_OPERATION_INVALID", err)
	}
	t.Logf("create while active: %v", err)
	err = c.DefineNetworkXML(ctx, "<network><name>vg-rpc-bad</name><ip address='x'/></network>")
	if err == nil || errors.Is(err, rpc.ErrNoReply) || !strings.Contains(err.Error(), "vg-rpc-bad") {
		t.Errorf("defining bad XML: %v", err)
	}
	if _, err := c.Networks(ctx, false); err != nil {
		t.Errorf("the Conn must survive libvirt's refusals: %v", err)
	}
}

// portXML is a port as a hypervisor driver would create it for a guest
// (plug type none: the network driver allocates and fills in the plug).
func portXML(uuid, owner, ownerUUID, mac string) string {
	return fmt.Sprintf(`<networkport>
  <uuid>%s</uuid>
  <owner><name>%s</name><uuid>%s</uuid></owner>
  <mac address='%s'/>
</networkport>
`, uuid, owner, ownerUUID, mac)
}

func virshPorts(t *testing.T, network string) []string {
	return strings.Fields(labkit.Run(t, "virsh", "-q", "net-port-list", network))
}

// Ports are saved, lost with a destroy, and come back under their UUIDs
// with ReclaimPort after the network is re-created with new addresses;
// reclaiming a port that is there changes nothing. No guest is needed:
// libvirt's port API works on its own.
func TestLabPortsReclaim(t *testing.T) {
	labkit.Require(t)
	ctx := testCtx(t)
	c := dial(t)
	const name, uuid = "vg-rpc-ports", "1c2d3e4f-5a6b-4c7d-8e9f-a0b1c2d3e4f5"
	removeNetwork(t, name)
	old := netXML(name, uuid, "vbr-rpcport", "10.77.7")
	if err := c.DefineNetworkXML(ctx, old); err != nil {
		t.Fatal(err)
	}
	// An inactive network has no ports.
	if ports, err := c.Ports(ctx, name); err != nil || len(ports) != 0 {
		t.Errorf("ports of an inactive network: %v, %v", ports, err)
	}
	labkit.Run(t, "virsh", "-q", "net-start", name)

	portUUIDs := []string{"aaaaaaaa-0000-4000-8000-000000000001", "aaaaaaaa-0000-4000-8000-000000000002"}
	for i, p := range portUUIDs {
		f := filepath.Join(t.TempDir(), "port.xml")
		os.WriteFile(f, []byte(portXML(p, "fakevm"+strconv.Itoa(i), "bbbbbbbb-0000-4000-8000-00000000000"+strconv.Itoa(i),
			"52:54:00:77:00:0"+strconv.Itoa(i))), 0o644)
		labkit.Run(t, "virsh", "-q", "net-port-create", name, f)
		t.Cleanup(func() { labkit.Try("virsh", "net-port-delete", name, p) })
	}

	saved, err := c.Ports(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range saved {
		got = append(got, p.UUID)
		if !strings.Contains(p.XML, "<uuid>"+p.UUID+"</uuid>") || !strings.Contains(p.XML, "<plug type='network' bridge='vbr-rpcport'/>") {
			t.Errorf("port %s XML:\n%s", p.UUID, p.XML)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, portUUIDs) {
		t.Fatalf("Ports: %v, want %v", got, portUUIDs)
	}
	t.Logf("NetworkPortGetXMLDesc:\n%s", saved[0].XML)

	// Renumber.
	if err := c.DestroyNetwork(ctx, name); err != nil {
		t.Fatal(err)
	}
	// Reclaiming onto an inactive network fails (libvirt: not active).
	if err := c.ReclaimPort(ctx, name, saved[0]); err == nil || errors.Is(err, rpc.ErrNotFound) {
		t.Errorf("reclaim on an inactive network: %v, want a failure", err)
	}
	if err := c.CreateNetworkXML(ctx, netXML(name, uuid, "vbr-rpcport", "10.77.8")); err != nil {
		t.Fatal(err)
	}
	if ports, err := c.Ports(ctx, name); err != nil || len(ports) != 0 {
		t.Fatalf("ports after destroy and create: %v, %v; libvirt should have dropped them", ports, err)
	}
	for _, p := range saved {
		if err := c.ReclaimPort(ctx, name, p); err != nil {
			t.Fatal(err)
		}
	}
	if got := virshPorts(t, name); !slices.Equal(sorted(got), portUUIDs) {
		t.Errorf("virsh net-port-list after reclaim: %v, want %v", got, portUUIDs)
	}
	// Again: the ports are there, nothing changes.
	for _, p := range saved {
		if err := c.ReclaimPort(ctx, name, p); err != nil {
			t.Errorf("reclaiming an existing port: %v", err)
		}
	}
	again, err := c.Ports(ctx, name)
	if err != nil || len(again) != len(saved) {
		t.Fatalf("ports after a second reclaim: %v, %v", again, err)
	}
	for _, p := range again {
		i := slices.IndexFunc(saved, func(s rpc.Port) bool { return s.UUID == p.UUID })
		if i < 0 || saved[i].XML != p.XML {
			t.Errorf("port %s after reclaim:\n%s\nbefore:\n%v", p.UUID, p.XML, saved)
		}
	}
	if err := c.ReclaimPort(ctx, "vg-rpc-nope", saved[0]); !errors.Is(err, rpc.ErrNotFound) {
		t.Errorf("reclaim on an unknown network: %v, want ErrNotFound", err)
	}
	if err := c.ReclaimPort(ctx, name, rpc.Port{UUID: "nope", XML: saved[0].XML}); err == nil {
		t.Error("reclaim with a bad UUID: no error")
	}
	if ports, err := c.Ports(ctx, "vg-rpc-nope"); !errors.Is(err, rpc.ErrNotFound) {
		t.Errorf("ports of an unknown network: %v, %v; want ErrNotFound", ports, err)
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func libvirtdPid(t *testing.T) int {
	b, err := os.ReadFile("/run/libvirtd.pid")
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// freeze stops libvirtd until the test ends.
func freeze(t *testing.T) {
	pid := libvirtdPid(t)
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGCONT) })
}

// A libvirtd that stops answering (SIGSTOP) costs a call its deadline, not
// more: ErrNoReply, the Conn closed, libvirtd none the worse once resumed.
func TestLabNoReplyWhenFrozen(t *testing.T) {
	labkit.Require(t)
	c := dial(t)
	if _, err := c.Networks(testCtx(t), false); err != nil {
		t.Fatal(err)
	}

	t.Run("call", func(t *testing.T) {
		freeze(t)
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := c.Networks(ctx, false)
		took := time.Since(start)
		if !errors.Is(err, rpc.ErrNoReply) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Networks, libvirtd frozen: %v, want ErrNoReply and DeadlineExceeded", err)
		}
		if took > 700*time.Millisecond {
			t.Errorf("Networks returned %v after a 500ms deadline", took)
		}
		t.Logf("frozen libvirtd: %v after %v", err, took.Round(time.Millisecond))
		if err := c.DestroyNetwork(context.Background(), "default"); !errors.Is(err, rpc.ErrClosed) {
			t.Errorf("after ErrNoReply: %v, want ErrClosed", err)
		}
		start = time.Now()
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if took := time.Since(start); took > 100*time.Millisecond {
			t.Errorf("Close after ErrNoReply took %v", took)
		}
	})
	t.Run("dial", func(t *testing.T) {
		freeze(t)
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := rpc.Dial(ctx)
		if !errors.Is(err, rpc.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Dial, libvirtd frozen: %v, want ErrUnavailable and DeadlineExceeded", err)
		}
		if took := time.Since(start); took > 500*time.Millisecond {
			t.Errorf("Dial returned %v after a 300ms deadline", took)
		}
	})
	// Resumed, libvirtd serves a new connection.
	c2 := dial(t)
	if _, err := c2.Network(testCtx(t), "default", false); err != nil && !errors.Is(err, rpc.ErrNotFound) {
		t.Errorf("after SIGCONT: %v", err)
	}
}

func TestLabDialNoSocket(t *testing.T) {
	labkit.Require(t)
	_, err := rpc.Dial(context.Background(), rpc.WithRunDir(t.TempDir()))
	if !errors.Is(err, rpc.ErrUnavailable) {
		t.Fatalf("Dial with no socket: %v, want ErrUnavailable", err)
	}
}

// The split layout, with libvirtd standing in for both modular daemons (its
// socket linked under their names; the lab has no virtnetworkd): networks
// open network:///system, which libvirtd serves too, and domains
// qemu:///system; without virtqemud's socket only the domain calls fail.
func TestLabSplitLayout(t *testing.T) {
	labkit.Require(t)
	labkit.DefaultNetwork(t)
	ctx := testCtx(t)
	for _, withQemu := range []bool{true, false} {
		dir := t.TempDir()
		os.Symlink("/run/libvirt/libvirt-sock", filepath.Join(dir, "virtnetworkd-sock"))
		if withQemu {
			os.Symlink("/run/libvirt/libvirt-sock", filepath.Join(dir, "virtqemud-sock"))
		}
		c := dial(t, rpc.WithRunDir(dir))
		if _, err := c.Network(ctx, "default", false); err != nil {
			t.Errorf("qemud %v: network over network:///system: %v", withQemu, err)
		}
		_, err := c.GuestNICs(ctx, "default")
		if withQemu && err != nil {
			t.Errorf("domains over qemu:///system: %v", err)
		}
		if !withQemu && !errors.Is(err, rpc.ErrUnavailable) {
			t.Errorf("domains without virtqemud: %v, want ErrUnavailable", err)
		}
	}
}

// libvirtdIOErrors counts libvirtd's "End of file while reading data"
// errors: what it logs when a client goes without closing its connection.
func libvirtdIOErrors(t *testing.T) int {
	return libvirtdLogCount(t, "End of file while reading data")
}

// libvirtdLogCount counts what in libvirtd's log (warnings and errors).
func libvirtdLogCount(t *testing.T, what string) int {
	b, err := os.ReadFile(filepath.Join(os.Getenv("LAB_LOGDIR"), "libvirtd.log"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), what)
}

// Close says goodbye: libvirtd logs no I/O error, as it does for a client
// that just hangs up.
func TestLabCloseQuiet(t *testing.T) {
	labkit.Require(t)
	ctx := testCtx(t)
	before := libvirtdIOErrors(t)
	c, err := rpc.Dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Networks(ctx, false); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // give libvirtd time to log, if it would
	if n := libvirtdIOErrors(t) - before; n != 0 {
		t.Errorf("libvirtd logged %d I/O errors after Close", n)
	}

	// The control: a go-libvirt client that hangs up.
	nc, err := net.Dial("unix", "/run/libvirt/libvirt-sock")
	if err != nil {
		t.Fatal(err)
	}
	l := libvirt.New(nc)
	if err := l.Connect(); err != nil {
		t.Fatal(err)
	}
	nc.Close()
	labkit.Eventually(t, 2*time.Second, "libvirtd to log the hang-up", func() bool {
		return libvirtdIOErrors(t) > before
	})
}

// --- with a real guest (labkit.StartGuestVM: qemu TCG on `default`) ---

func TestLabVMGuestNICs(t *testing.T) {
	labkit.Require(t)
	labkit.DefaultNetwork(t)
	ctx := testCtx(t)
	c := dial(t)
	vm := labkit.StartGuestVM(t, "vg-rpc-nics", "default")

	nics, err := c.GuestNICs(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	if len(nics) != 1 {
		t.Fatalf("GuestNICs(default): %+v, want the VM's one NIC", nics)
	}
	nic := nics[0]
	t.Logf("GuestNIC: %+v", nic)
	domUUID := strings.TrimSpace(labkit.Run(t, "virsh", "domuuid", vm.Domain()))
	ports := virshPorts(t, "default")
	if nic.Domain != vm.Domain() || nic.DomainUUID != domUUID || nic.MAC != vm.MAC().String() ||
		nic.Target != vm.Tap(t) || nic.Bridge != "virbr0" || !slices.Equal(ports, []string{nic.PortID}) {
		t.Errorf("GuestNIC %+v; want domain %s %s, MAC %s, tap %s, bridge virbr0, port %v",
			nic, vm.Domain(), domUUID, vm.MAC(), vm.Tap(t), ports)
	}
	if nics, err := c.GuestNICs(ctx, "vg-rpc-other"); err != nil || len(nics) != 0 {
		t.Errorf("GuestNICs(other network): %+v, %v", nics, err)
	}

	// SetLink down shows in the live XML; up again.
	if err := c.SetLink(ctx, nic, false); err != nil {
		t.Fatal(err)
	}
	if out := labkit.Run(t, "virsh", "domif-getlink", vm.Domain(), nic.MAC); !strings.Contains(out, "down") {
		t.Errorf("after SetLink down: %s", out)
	}
	if err := c.SetLink(ctx, nic, true); err != nil {
		t.Fatal(err)
	}
	if out := labkit.Run(t, "virsh", "domif-getlink", vm.Domain(), nic.MAC); !strings.Contains(out, " up") {
		t.Errorf("after SetLink up: %s", out)
	}

	// A NIC the domain does not have: VIR_ERR_DEVICE_MISSING.
	bogus := nic
	bogus.XML = strings.Replace(nic.XML, nic.MAC, "52:54:00:ff:ff:fe", 1)
	bogus.MAC = "52:54:00:ff:ff:fe"
	err = c.SetLink(ctx, bogus, false)
	t.Logf("SetLink on a missing NIC: %v", err)
	var lerr libvirt.Error
	if !errors.Is(err, rpc.ErrNotFound) || !errors.As(err, &lerr) || libvirt.ErrorNumber(lerr.Code) != libvirt.ErrDeviceMissing {
		t.Errorf("SetLink on a missing NIC: %v, want ErrNotFound (VIR_ERR_DEVICE_MISSING)", err)
	}
	// The domain gone: VIR_ERR_NO_DOMAIN.
	labkit.Run(t, "virsh", "-q", "destroy", vm.Domain())
	err = c.SetLink(ctx, nic, true)
	t.Logf("SetLink on a gone domain: %v", err)
	if !errors.Is(err, rpc.ErrNotFound) || !errors.As(err, &lerr) || libvirt.ErrorNumber(lerr.Code) != libvirt.ErrNoDomain {
		t.Errorf("SetLink on a gone domain: %v, want ErrNotFound", err)
	}
	if nics, err := c.GuestNICs(ctx, "default"); err != nil || len(nics) != 0 {
		t.Errorf("GuestNICs after the domain went: %+v, %v", nics, err)
	}
}

// The whole renumber of a network with a running guest, with this package's
// primitives: save the ports, destroy, create with a new subnet (same name
// and UUID), reclaim the ports, re-plug the tap, bounce the guest's link.
// The guest leases in the new subnet and keeps its port.
func TestLabVMRenumber(t *testing.T) {
	labkit.Require(t)
	labkit.DefaultNetwork(t)
	// Whatever happens, leave `default` running its definition for the
	// tests after this one.
	t.Cleanup(func() {
		labkit.Try("virsh", "net-destroy", "default")
		labkit.Try("virsh", "net-start", "default")
	})
	ctx := testCtx(t)
	c := dial(t)
	vm := labkit.StartGuestVM(t, "vg-rpc-renum", "default")
	oldLAN, newLAN := netip.MustParsePrefix("192.168.122.0/24"), netip.MustParsePrefix("192.168.150.0/24")
	vm.WaitLease(t, oldLAN, 60*time.Second)

	start := time.Now()
	net, err := c.Network(ctx, "default", true)
	if err != nil {
		t.Fatal(err)
	}
	nics, err := c.GuestNICs(ctx, "default")
	if err != nil || len(nics) != 1 {
		t.Fatalf("GuestNICs: %+v, %v", nics, err)
	}
	ports, err := c.Ports(ctx, "default")
	if err != nil || len(ports) != 1 || ports[0].UUID != nics[0].PortID {
		t.Fatalf("Ports: %+v, %v; want the guest's port %s", ports, err, nics[0].PortID)
	}
	t.Logf("guest's port:\n%s", ports[0].XML)
	t.Logf("guest's interface:\n%s", nics[0].XML)

	if err := c.DestroyNetwork(ctx, "default"); err != nil {
		t.Fatal(err)
	}
	if err := c.CreateNetworkXML(ctx, strings.ReplaceAll(net.LiveXML, "192.168.122.", "192.168.150.")); err != nil {
		t.Fatal(err)
	}
	for _, p := range ports {
		if err := c.ReclaimPort(ctx, "default", p); err != nil {
			t.Fatal(err)
		}
	}
	labkit.Run(t, "ip", "link", "set", nics[0].Target, "master", "virbr0")
	leases := len(vm.Leases())
	if err := c.SetLink(ctx, nics[0], false); err != nil {
		t.Fatal(err)
	}
	t.Logf("renumbered, ports reclaimed, tap re-plugged, link down: %v", time.Since(start).Round(time.Millisecond))
	time.Sleep(time.Second)
	up := time.Now()
	if err := c.SetLink(ctx, nics[0], true); err != nil {
		t.Fatal(err)
	}
	addr := vm.WaitLeaseAfter(t, leases, newLAN, 30*time.Second)
	t.Logf("guest leased %s %v after link up", addr, time.Since(up).Round(time.Millisecond))
	if err := vm.Ping(addr, 10*time.Second); err != nil {
		t.Error(err)
	}

	if got := virshPorts(t, "default"); !slices.Equal(got, []string{ports[0].UUID}) {
		t.Errorf("virsh net-port-list default: %v, want the same port %s", got, ports[0].UUID)
	}
	after, err := c.Network(ctx, "default", true)
	if err != nil {
		t.Fatal(err)
	}
	if after.UUID != net.UUID || !strings.Contains(after.LiveXML, "192.168.150.1") || !strings.Contains(after.DefinedXML, "192.168.122.1") {
		t.Errorf("after renumber: uuid %s (was %s)\nlive:\n%s\ndefined:\n%s", after.UUID, net.UUID, after.LiveXML, after.DefinedXML)
	}
	if nics2, err := c.GuestNICs(ctx, "default"); err != nil || len(nics2) != 1 || nics2[0].PortID != ports[0].UUID {
		t.Errorf("GuestNICs after renumber: %+v, %v", nics2, err)
	}

	// With its port back, the guest stops without libvirtd complaining
	// about a port it does not know.
	before := libvirtdLogCount(t, "network port not found")
	labkit.Run(t, "virsh", "-q", "destroy", vm.Domain())
	if got := virshPorts(t, "default"); len(got) != 0 {
		t.Errorf("ports after the guest stopped: %v", got)
	}
	if n := libvirtdLogCount(t, "network port not found") - before; n != 0 {
		t.Errorf("libvirtd logged %d 'network port not found' errors as the guest stopped", n)
	}
}

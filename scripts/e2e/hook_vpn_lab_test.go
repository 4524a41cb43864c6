//go:build lab

package e2e

import (
	"encoding/binary"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/vnetguard/vnetguard/scripts/labkit"
)

// fakeVPN is a NetworkManager VPN plugin (the D-Bus service a VPN type's
// .name file names) that connects at once: it hands NetworkManager a tunnel
// interface that exists already and one IPv4 address for it. The test
// process owns the service's bus name before NetworkManager looks for it,
// so NetworkManager talks to it instead of starting a program.
type fakeVPN struct {
	conn            *dbus.Conn
	tundev          string
	addr            netip.Prefix
	gateway         netip.Addr // the VPN server, reached over the base connection
	connects, stops int
}

const (
	fakeVPNService = "org.freedesktop.NetworkManager.vnetguardfake"
	vpnPluginPath  = "/org/freedesktop/NetworkManager/VPN/Plugin"
	vpnPluginIface = "org.freedesktop.NetworkManager.VPN.Plugin"
)

// u32 is an IPv4 address as the VPN plugin API carries it: a uint32 whose
// bytes in memory are the address in network order.
func u32(a netip.Addr) uint32 {
	b := a.As4()
	return binary.NativeEndian.Uint32(b[:])
}

func (f *fakeVPN) emit(name string, args ...any) {
	f.conn.Emit(vpnPluginPath, vpnPluginIface+"."+name, args...)
}

func (f *fakeVPN) NeedSecrets(map[string]map[string]dbus.Variant) (string, *dbus.Error) {
	return "", nil
}

func (f *fakeVPN) Connect(map[string]map[string]dbus.Variant) *dbus.Error {
	f.connects++
	go func() {
		time.Sleep(100 * time.Millisecond) // after NetworkManager has our reply
		f.emit("StateChanged", uint32(3))  // starting
		f.emit("Config", map[string]dbus.Variant{
			"tundev":  dbus.MakeVariant(f.tundev),
			"gateway": dbus.MakeVariant(u32(f.gateway)),
			"has-ip4": dbus.MakeVariant(true),
			"has-ip6": dbus.MakeVariant(false),
		})
		f.emit("Ip4Config", map[string]dbus.Variant{
			"address":       dbus.MakeVariant(u32(f.addr.Addr())),
			"prefix":        dbus.MakeVariant(uint32(f.addr.Bits())),
			"never-default": dbus.MakeVariant(true),
		})
		f.emit("StateChanged", uint32(4)) // started
	}()
	return nil
}

func (f *fakeVPN) ConnectInteractive(c map[string]map[string]dbus.Variant, _ map[string]dbus.Variant) *dbus.Error {
	return f.Connect(c)
}

func (f *fakeVPN) Disconnect() *dbus.Error {
	f.stops++
	go f.emit("StateChanged", uint32(6)) // stopped
	return nil
}

func (f *fakeVPN) SetConfig(map[string]dbus.Variant) *dbus.Error    { return nil }
func (f *fakeVPN) SetIp4Config(map[string]dbus.Variant) *dbus.Error { return nil }
func (f *fakeVPN) SetIp6Config(map[string]dbus.Variant) *dbus.Error { return nil }
func (f *fakeVPN) SetFailure(string) *dbus.Error                    { return nil }
func (f *fakeVPN) NewSecrets(map[string]map[string]dbus.Variant) *dbus.Error {
	return nil
}

// startFakeVPN installs the VPN type (a .name file NetworkManager picks up
// from /usr/lib/NetworkManager/VPN, and a bus policy that lets root own the
// service) and serves it until the test ends.
func startFakeVPN(t *testing.T, f *fakeVPN) {
	t.Helper()
	labkit.WriteFile(t, "/etc/dbus-1/system.d/vnetguard-fakevpn.conf", `<!DOCTYPE busconfig PUBLIC
 "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <policy user="root">
    <allow own="`+fakeVPNService+`"/>
    <allow send_destination="`+fakeVPNService+`"/>
  </policy>
</busconfig>
`, 0o644)
	conn, err := dbus.ConnectSystemBus()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if err := conn.BusObject().Call("org.freedesktop.DBus.ReloadConfig", 0).Err; err != nil {
		t.Fatalf("reloading the bus's policy: %v", err)
	}
	f.conn = conn
	if err := conn.Export(f, vpnPluginPath, vpnPluginIface); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "owning "+fakeVPNService, func() bool {
		reply, err := conn.RequestName(fakeVPNService, dbus.NameFlagDoNotQueue)
		return err == nil && reply == dbus.RequestNameReplyPrimaryOwner
	})
	labkit.WriteFile(t, "/usr/lib/NetworkManager/VPN/nm-vnetguardfake-service.name", `[VPN Connection]
name=vnetguardfake
service=`+fakeVPNService+`
program=/bin/false
supports-multiple-connections=false
`, 0o644)
}

// vpn-pre-up: NetworkManager 1.42 runs pre-up.d scripts for a VPN with the
// VPN's configuration in VPN_IP4_* and already applied to its interface
// (netlink shows it), and reports the VPN up only after them. So the hook,
// reading netlink, moves a network clashing with the VPN's address before
// `nmcli connection up` of the VPN returns.
func TestHookVPNPreUpMovesNetworkBeforeVPNUp(t *testing.T) {
	labkit.Require(t)
	f := &fakeVPN{tundev: "tun-vf", addr: netip.MustParsePrefix("192.168.185.50/24"), gateway: netip.MustParseAddr("10.205.0.1")}
	startFakeVPN(t, f)
	// The base connection, with the default route a VPN needs, and the
	// tunnel's interface (a veth standing in for a tun device).
	base := labkit.NewUplink(t, "up-vb", "10.205.0.1/24")
	base.NMStatic(t, "10.205.0.2/24", "ipv4.gateway", "10.205.0.1")
	labkit.Run(t, "ip", "link", "add", f.tundev, "type", "veth", "peer", "name", f.tundev+"p")
	t.Cleanup(func() { exec.Command("ip", "link", "del", f.tundev).Run() })
	labkit.Run(t, "ip", "link", "set", f.tundev+"p", "up")

	spec := netSpec{name: "hv", bridge: "vbr-hv", v4: "192.168.185", policy: "renumber"}
	defineNetwork(t, spec)
	old := netip.MustParsePrefix("192.168.185.0/24")

	rec := t.TempDir()
	labkit.WriteFile(t, "/etc/NetworkManager/dispatcher.d/pre-up.d/10-record", `#!/bin/sh
[ "$2" = vpn-pre-up ] || exit 0
env >`+rec+`/env
ip -4 -o addr show dev `+f.tundev+` >`+rec+`/addr
`, 0o755)
	dispatcherHook(t, "/etc/NetworkManager/dispatcher.d/pre-up.d/90-vnetguard")

	// NetworkManager notices the new VPN type through its directory monitor.
	eventually(t, 10*time.Second, "NetworkManager to know the VPN type", func() bool {
		_, err := labkit.Try("nmcli", "connection", "add", "type", "vpn", "con-name", "vf", "ifname", "*",
			"vpn-type", fakeVPNService, "vpn.data", "x=y", "connection.autoconnect", "no")
		return err == nil
	})
	t.Cleanup(func() {
		exec.Command("nmcli", "connection", "down", "vf").Run()
		exec.Command("nmcli", "connection", "delete", "vf").Run()
	})
	start := time.Now()
	if out, err := labkit.Try("nmcli", "--wait", "20", "connection", "up", "vf"); err != nil {
		log, _ := os.ReadFile(filepath.Join(os.Getenv("LAB_LOGDIR"), "NetworkManager.log"))
		lines := strings.Split(string(log), "\n")
		if len(lines) > 60 {
			lines = lines[len(lines)-60:]
		}
		t.Fatalf("VPN up: %v %s\nNetworkManager.log:\n%s", err, out, strings.Join(lines, "\n"))
	}
	took := time.Since(start)
	now := liveV4(t, spec.name)
	env, _ := os.ReadFile(filepath.Join(rec, "env"))
	addr, _ := os.ReadFile(filepath.Join(rec, "addr"))
	t.Logf("nmcli took %v; at vpn-pre-up %s had %q; VPN variables: %q", took.Round(time.Millisecond), f.tundev, addr,
		grepLines(string(env), "VPN_"))
	if !strings.Contains(string(env), "VPN_IP4_ADDRESS_0=192.168.185.50/24") {
		t.Errorf("vpn-pre-up did not carry the VPN's address:\n%s", env)
	}
	if !strings.Contains(string(addr), "192.168.185.50/24") {
		t.Errorf("NetworkManager had not applied the VPN's address at vpn-pre-up: %q", addr)
	}
	if now.Overlaps(old) {
		t.Fatalf("network still on %s when the VPN was reported up", now)
	}
}

func grepLines(s, prefix string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return out
}

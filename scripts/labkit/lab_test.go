//go:build lab

package labkit

import (
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
)

// The lab itself works: libvirt starts a network whose dnsmasq leases to a
// guest, NetworkManager activates a connection, libvirt-dbus answers.
func TestLabWorks(t *testing.T) {
	Require(t)
	f := t.TempDir() + "/n.xml"
	Run(t, "sh", "-c", `cat > `+f+` <<'X'
<network><name>labcheck</name><bridge name='vbr-lc'/><forward mode='nat'/>
<ip address='192.168.240.1' prefix='24'><dhcp><range start='192.168.240.10' end='192.168.240.20'/></dhcp></ip></network>
X`)
	Run(t, "virsh", "-q", "net-create", f)
	t.Cleanup(func() { exec.Command("virsh", "net-destroy", "labcheck").Run() })

	g := NewGuest(t, "g-lc", "vbr-lc")
	g.WaitAddr(t, netip.MustParsePrefix("192.168.240.0/24"), 30*time.Second)
	if err := g.Ping(t, netip.MustParseAddr("192.168.240.1")); err != nil {
		t.Fatalf("guest cannot reach its bridge: %v", err)
	}

	up := NewUplink(t, "up-lc", "10.123.0.1/24")
	Run(t, "nmcli", "device", "set", up.Name, "managed", "yes")
	Run(t, "nmcli", "connection", "add", "type", "ethernet", "ifname", up.Name, "con-name", "lc",
		"ipv4.method", "manual", "ipv4.addresses", "10.123.0.2/24", "ipv6.method", "disabled")
	t.Cleanup(func() { exec.Command("nmcli", "connection", "delete", "lc").Run() })
	Run(t, "nmcli", "--wait", "20", "connection", "up", "lc")
	if out := Run(t, "ip", "-4", "addr", "show", "dev", up.Name); !strings.Contains(out, "10.123.0.2/24") {
		t.Fatalf("NetworkManager did not configure the uplink: %s", out)
	}
	Run(t, "ping", "-c", "1", "-W", "2", "10.123.0.1")

	conn, err := dbus.ConnectSystemBus()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var nets []dbus.ObjectPath
	if err := conn.Object("org.libvirt", "/org/libvirt/QEMU").Call("org.libvirt.Connect.ListNetworks", 0, uint32(0)).Store(&nets); err != nil {
		t.Fatalf("libvirt-dbus: %v", err)
	}
	if len(nets) == 0 {
		t.Fatal("libvirt-dbus lists no networks, but labcheck runs")
	}
}

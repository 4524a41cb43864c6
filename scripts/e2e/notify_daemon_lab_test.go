//go:build lab

package e2e

import (
	"bufio"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/vnetguard/vnetguard/scripts/labkit"
)

// The daemon announces what it did: a real clash moves a network, and the
// notification agent (private system and session buses, a stub
// notification server) shows it in plain words.
func TestDaemonActionReachesNotifyAgent(t *testing.T) {
	labkit.Require(t)
	sysAddr, sessAddr := privateBus(t), privateBus(t)
	sess, err := dbus.Connect(sessAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	stub := &stubNotifications{calls: make(chan notification, 8)}
	if err := sess.Export(stub, "/org/freedesktop/Notifications", "org.freedesktop.Notifications"); err != nil {
		t.Fatal(err)
	}
	if r, err := sess.RequestName("org.freedesktop.Notifications", dbus.NameFlagDoNotQueue); err != nil || r != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("own org.freedesktop.Notifications: %v %v", r, err)
	}
	agent := exec.Command(vnetguardBin, "notify-agent")
	agent.Env = []string{"DBUS_SYSTEM_BUS_ADDRESS=" + sysAddr, "DBUS_SESSION_BUS_ADDRESS=" + sessAddr, "PATH=/usr/bin:/bin"}
	out, err := agent.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { agent.Process.Kill(); agent.Wait() })
	listening := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == "notify-agent: listening" {
				listening <- true
			}
		}
	}()
	select {
	case <-listening:
	case <-time.After(10 * time.Second):
		t.Fatal("agent not listening")
	}

	d := newDirs(t)
	spec := netSpec{name: "nt", bridge: "vbr-nt", v4: "192.168.173", policy: "renumber"}
	defineNetwork(t, spec)
	t.Setenv("DBUS_SYSTEM_BUS_ADDRESS", sysAddr) // the daemon announces there
	startDaemon(t, d, writeConfig(t, daemonConfig))
	clashingUplink(t, "up-nt", "192.168.173.9/24")
	moved := movedAway(t, d, "nt", netip.MustParsePrefix("192.168.173.0/24"), 10*time.Second)
	select {
	case n := <-stub.calls:
		want := "Virtual network 'nt' moved from 192.168.173.0/24 to " + moved.Masked().String()
		if n.summary != "Virtual network moved" || !strings.HasPrefix(n.body, want) || !strings.Contains(n.body, "up-nt") {
			t.Fatalf("Notify(%q, %q), want a body starting %q naming up-nt", n.summary, n.body, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the daemon's action reached no notification")
	}
}

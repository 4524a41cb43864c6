//go:build lab

package e2e

import (
	"bufio"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/vnetguard/vnetguard/nmhook/notify"
)

// notification is one Notify call the stub server received.
type notification struct {
	summary, body string
	actions       []string
}

// stubNotifications serves org.freedesktop.Notifications.Notify.
type stubNotifications struct {
	calls chan notification
	next  uint32
}

func (s *stubNotifications) Notify(app string, replaces uint32, icon, summary, body string, actions []string,
	hints map[string]dbus.Variant, timeout int32) (uint32, *dbus.Error) {
	s.next++
	s.calls <- notification{summary, body, actions}
	return s.next, nil
}

func (s *stubNotifications) GetServerInformation() (string, string, string, string, *dbus.Error) {
	return "stub", "vnetguard-test", "1", "1.2", nil
}

// Issue 11 item 4: the agent, on a private session bus with a stub
// notification server, turns vnetguard's signal on the (private) system
// bus into a Notify call in plain words, and its Details action into a
// second one with the facts.
func TestPkgNotifyAgent(t *testing.T) {
	sysAddr, stub, stderr, sess := startNotifyAgent(t)

	sys, err := dbus.Connect(sysAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close()
	ev := notify.Event{Network: "default", Backend: "libvirt", Action: "renumber",
		OldSubnets: []string{"192.168.122.0/24"}, NewSubnets: []string{"192.168.121.0/24"},
		Cause: "192.168.122.0/24", Interface: "wlan0", Connection: "Hotel", Kind: "Wi-Fi"}
	if err := notify.Emit(sys, ev); err != nil {
		t.Fatal(err)
	}
	var n notification
	select {
	case n = <-stub.calls:
	case <-time.After(10 * time.Second):
		t.Fatalf("no Notify call; agent stderr: %s", stderr.String())
	}
	const want = "Virtual network 'default' moved from 192.168.122.0/24 to 192.168.121.0/24 because Wi-Fi 'Hotel' uses 192.168.122.0/24."
	if n.summary != "Virtual network moved" || n.body != want {
		t.Fatalf("Notify(%q, %q), want body %q", n.summary, n.body, want)
	}
	if len(n.actions) != 2 || n.actions[0] != "details" {
		t.Fatalf("actions %q", n.actions)
	}

	// The user clicks "Details".
	if err := sess.Emit("/org/freedesktop/Notifications", "org.freedesktop.Notifications.ActionInvoked", uint32(1), "details"); err != nil {
		t.Fatal(err)
	}
	select {
	case n = <-stub.calls:
	case <-time.After(10 * time.Second):
		t.Fatalf("no details Notify call; agent stderr: %s", stderr.String())
	}
	for _, want := range []string{"Subnets now: 192.168.121.0/24", "wlan0", "Wi-Fi connection 'Hotel'"} {
		if !strings.Contains(n.body, want) {
			t.Errorf("details %q lack %q", n.body, want)
		}
	}
}

// startNotifyAgent runs `vnetguard notify-agent` on a private system bus
// and a private session bus where a stub serves org.freedesktop.Notifications,
// and returns once it listens.
func startNotifyAgent(t *testing.T) (sysAddr string, stub *stubNotifications, stderr *strings.Builder, sess *dbus.Conn) {
	t.Helper()
	sysAddr, sessAddr := privateBus(t), privateBus(t)
	sess, err := dbus.Connect(sessAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sess.Close() })
	stub = &stubNotifications{calls: make(chan notification, 8)}
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
	stderr = &strings.Builder{}
	agent.Stderr = stderr
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		agent.Process.Kill()
		agent.Wait()
		if stderr.Len() > 0 {
			t.Logf("agent stderr: %s", stderr.String())
		}
	})
	listening := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			select {
			case listening <- sc.Text():
			default:
			}
		}
	}()
	select {
	case l := <-listening:
		if l != "notify-agent: listening" {
			t.Fatalf("agent said %q", l)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("agent not listening; stderr: %s", stderr.String())
	}
	return sysAddr, stub, stderr, sess
}

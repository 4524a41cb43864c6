package labkit

import (
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
)

// BusCall is a message seen on the system bus: a method call, or the
// answer to one (Type dbus.TypeMethodReply or dbus.TypeError, ReplySerial
// the call's Serial).
type BusCall struct {
	Type        dbus.Type
	Serial      uint32
	ReplySerial uint32
	Sender      string // the caller's unique name (of a call)
	Destination string
	Path        dbus.ObjectPath
	Interface   string
	Member      string
	Seen        time.Time
}

// BusMonitor copies the system bus's messages that match its rules to the
// test, as dbus-monitor does (org.freedesktop.DBus.Monitoring.BecomeMonitor:
// root only), so a test sees what a process asks NetworkManager from
// outside the process. It is closed at cleanup.
type BusMonitor struct {
	mon    *dbus.Conn // the monitor: receives, never sends
	lookup *dbus.Conn // an ordinary connection for the bus's own questions
	msgs   chan *dbus.Message

	mu   sync.Mutex
	pids map[string]int
}

// NMCalls matches every method call to NetworkManager. Watching them all
// (rather than NMCallRule's one member) lets WaitCall learn a caller's pid
// at its first call, so the call waited for is recognised at once.
const NMCalls = "type='method_call',destination='org.freedesktop.NetworkManager'"

// NMAnswers matches NetworkManager's answers (replies and errors) to
// method calls, for BusMonitor.WaitAnswer.
var NMAnswers = []string{
	"type='method_return',sender='org.freedesktop.NetworkManager'",
	"type='error',sender='org.freedesktop.NetworkManager'",
}

// NMCallRule matches method calls to NetworkManager with the given member
// (CheckpointCreate, Update2, Reapply, CheckpointDestroy...).
func NMCallRule(member string) string {
	return fmt.Sprintf("type='method_call',destination='org.freedesktop.NetworkManager',member='%s'", member)
}

// MonitorBus starts monitoring the system bus for messages matching rules
// (dbus match rules, e.g. NMCallRule).
func MonitorBus(t testing.TB, rules ...string) *BusMonitor {
	t.Helper()
	dial := func() *dbus.Conn {
		c, err := dbus.SystemBusPrivate()
		if err == nil {
			if err = c.Auth(nil); err == nil {
				err = c.Hello()
			}
		}
		if err != nil {
			t.Fatalf("system bus: %v", err)
		}
		return c
	}
	m := &BusMonitor{mon: dial(), lookup: dial(), msgs: make(chan *dbus.Message, 4096), pids: map[string]int{}}
	t.Cleanup(func() { m.mon.Close(); m.lookup.Close() })
	// Eavesdrop before becoming a monitor: from then on godbus must never
	// answer a call it sees (a monitor that sends is disconnected). The
	// bus's reply to BecomeMonitor itself arrives here too.
	m.mon.Eavesdrop(m.msgs)
	m.mon.BusObject().Go("org.freedesktop.DBus.Monitoring.BecomeMonitor", 0, nil, rules, uint32(0))
	deadline := time.After(5 * time.Second)
	for {
		select {
		case msg := <-m.msgs:
			if sender, _ := msg.Headers[dbus.FieldSender].Value().(string); sender != "org.freedesktop.DBus" {
				continue
			}
			switch msg.Type {
			case dbus.TypeMethodReply:
				return m
			case dbus.TypeError:
				t.Fatalf("BecomeMonitor: %v", msg.Body)
			}
		case <-deadline:
			t.Fatal("BecomeMonitor: no answer from the bus within 5 s")
		}
	}
}

// Next returns the next message seen, waiting up to timeout (ok false
// when none came).
func (m *BusMonitor) Next(timeout time.Duration) (BusCall, bool) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case msg := <-m.msgs:
			h := func(f dbus.HeaderField) dbus.Variant { return msg.Headers[f] }
			c := BusCall{Type: msg.Type, Serial: msg.Serial(), Seen: time.Now()}
			c.ReplySerial, _ = h(dbus.FieldReplySerial).Value().(uint32)
			c.Sender, _ = h(dbus.FieldSender).Value().(string)
			c.Destination, _ = h(dbus.FieldDestination).Value().(string)
			c.Path, _ = h(dbus.FieldPath).Value().(dbus.ObjectPath)
			c.Interface, _ = h(dbus.FieldInterface).Value().(string)
			c.Member, _ = h(dbus.FieldMember).Value().(string)
			return c, true
		case <-timer.C:
			return BusCall{}, false
		}
	}
}

// SenderPID is the process id of a bus connection (0 when it is gone).
func (m *BusMonitor) SenderPID(name string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if pid, ok := m.pids[name]; ok {
		return pid
	}
	var pid uint32
	if err := m.lookup.BusObject().Call("org.freedesktop.DBus.GetConnectionUnixProcessID", 0, name).Store(&pid); err != nil {
		return 0
	}
	m.pids[name] = int(pid)
	return int(pid)
}

// WaitCall waits up to timeout for process pid to call member (on a
// connection of its own) and returns the call the moment it is seen (ok
// false when pid made no such call in time). What the test does then
// (stop or kill the caller, or the callee) lands before the caller can
// read the answer, at the latest a few milliseconds after it.
func (m *BusMonitor) WaitCall(pid int, member string, timeout time.Duration) (BusCall, bool) {
	deadline := time.Now().Add(timeout)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return BusCall{}, false
		}
		c, ok := m.Next(left)
		if !ok {
			return BusCall{}, false
		}
		if c.Type == dbus.TypeMethodCall && m.SenderPID(c.Sender) == pid && c.Member == member {
			return c, true
		}
	}
}

// WaitAnswer waits up to timeout for the answer to call (the monitor
// needs NMAnswers among its rules) and tells whether it came.
func (m *BusMonitor) WaitAnswer(call BusCall, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return false
		}
		c, ok := m.Next(left)
		if !ok {
			return false
		}
		if (c.Type == dbus.TypeMethodReply || c.Type == dbus.TypeError) && c.ReplySerial == call.Serial && c.Destination == call.Sender {
			return true
		}
	}
}

// SignalAtCall is WaitCall that sends the caller sig the moment the call
// is seen: the process stops (or dies) with the call sent and its answer
// unread.
func (m *BusMonitor) SignalAtCall(pid int, member string, sig syscall.Signal, timeout time.Duration) (BusCall, bool) {
	c, ok := m.WaitCall(pid, member, timeout)
	if ok {
		syscall.Kill(pid, sig)
	}
	return c, ok
}

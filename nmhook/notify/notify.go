// Package notify is vnetguard's desktop notification signal: what the
// daemon did to a virtual network and why, broadcast on the system bus for
// any local user's notification agent, and the plain words an agent shows.
//
// The signal carries only facts any local user may see anyway (network
// and interface names, subnets, a connection's name): no XML, no guest
// names, no paths. Broadcasting a signal needs no bus name and no D-Bus
// policy (the system bus allows every signal to be sent and received).
package notify

import (
	"fmt"
	"strings"

	"github.com/godbus/dbus/v5"
)

// The signal: Path, Interface.Member with the arguments of Event, in order.
const (
	Path      = dbus.ObjectPath("/org/vnetguard/Events")
	Interface = "org.vnetguard.Events1"
	Member    = "Action"
	// Signature of the signal's body.
	Signature = "sssasasssss"
)

// Event is one action on one virtual network.
type Event struct {
	Network    string   // "default"
	Backend    string   // "libvirt", "nm"
	Action     string   // renumber, destroy, warn
	OldSubnets []string // the network's subnets before ("192.168.122.0/24")
	NewSubnets []string // after a renumber; empty otherwise
	Cause      string   // what the host uses that clashes ("192.168.122.0/24")
	Interface  string   // the host interface that carries it ("wlan0"), if known
	Connection string   // the NetworkManager connection's name ("Hotel"), if known
	Kind       string   // the connection's kind in words ("Wi-Fi", "VPN", "Ethernet"), if known
}

func (e Event) args() []any {
	nz := func(s []string) []string {
		if s == nil {
			return []string{}
		}
		return s
	}
	return []any{e.Network, e.Backend, e.Action, nz(e.OldSubnets), nz(e.NewSubnets), e.Cause, e.Interface, e.Connection, e.Kind}
}

// Emit broadcasts e on conn (the system bus).
func Emit(conn *dbus.Conn, e Event) error {
	return conn.Emit(Path, Interface+"."+Member, e.args()...)
}

// MatchOptions select the signal on a bus (conn.AddMatchSignal).
func MatchOptions() []dbus.MatchOption {
	return []dbus.MatchOption{
		dbus.WithMatchObjectPath(Path),
		dbus.WithMatchInterface(Interface),
		dbus.WithMatchMember(Member),
	}
}

// Parse reads an Event from a signal; false when the signal is not one.
func Parse(s *dbus.Signal) (Event, bool) {
	if s == nil || s.Path != Path || s.Name != Interface+"."+Member || len(s.Body) != 9 {
		return Event{}, false
	}
	var e Event
	str := []*string{&e.Network, &e.Backend, &e.Action}
	for i, p := range str {
		v, ok := s.Body[i].(string)
		if !ok {
			return Event{}, false
		}
		*p = v
	}
	var ok1, ok2 bool
	e.OldSubnets, ok1 = s.Body[3].([]string)
	e.NewSubnets, ok2 = s.Body[4].([]string)
	if !ok1 || !ok2 {
		return Event{}, false
	}
	for i, p := range []*string{&e.Cause, &e.Interface, &e.Connection, &e.Kind} {
		v, ok := s.Body[5+i].(string)
		if !ok {
			return Event{}, false
		}
		*p = v
	}
	return e, true
}

// because says why, in words: "because Wi-Fi 'Hotel' uses 192.168.122.0/24".
func (e Event) because() string { return "because " + e.uses() }

// uses: "Wi-Fi 'Hotel' uses 192.168.122.0/24".
func (e Event) uses() string {
	var who string
	switch {
	case e.Connection != "" && e.Kind != "":
		who = fmt.Sprintf("%s '%s'", e.Kind, e.Connection)
	case e.Connection != "":
		who = fmt.Sprintf("the network connection '%s'", e.Connection)
	case e.Interface != "":
		who = fmt.Sprintf("the network interface %s", e.Interface)
	default:
		who = "a network this computer joined"
	}
	if e.Cause == "" {
		return who + " uses the same addresses"
	}
	return who + " uses " + e.Cause
}

func list(s []string) string {
	if len(s) == 0 {
		return "its addresses"
	}
	return strings.Join(s, " and ")
}

// Message is what a desktop user reads: a summary line and a sentence.
func Message(e Event) (summary, body string) {
	switch e.Action {
	case "renumber":
		return "Virtual network moved", fmt.Sprintf("Virtual network '%s' moved from %s to %s %s.",
			e.Network, list(e.OldSubnets), list(e.NewSubnets), e.because())
	case "destroy":
		return "Virtual network stopped", fmt.Sprintf("Virtual network '%s' on %s was stopped %s.",
			e.Network, list(e.OldSubnets), e.because())
	case "warn":
		return "Virtual network clashes", fmt.Sprintf("Virtual network '%s' on %s clashes: %s. It was left as it is, so its virtual machines may not reach that network.",
			e.Network, list(e.OldSubnets), e.uses())
	default:
		return "Virtual network changed", fmt.Sprintf("vnetguard acted on virtual network '%s' (%s) %s.", e.Network, e.Action, e.because())
	}
}

// Details is the longer text behind a notification's "Details" action.
func Details(e Event) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Network: %s (%s)\n", e.Network, e.Backend)
	fmt.Fprintf(&b, "Action: %s\n", e.Action)
	fmt.Fprintf(&b, "Subnets before: %s\n", list(e.OldSubnets))
	if len(e.NewSubnets) > 0 {
		fmt.Fprintf(&b, "Subnets now: %s\n", list(e.NewSubnets))
	}
	if e.Cause != "" {
		fmt.Fprintf(&b, "Clashing with: %s", e.Cause)
		if e.Interface != "" {
			fmt.Fprintf(&b, " on %s", e.Interface)
		}
		if e.Connection != "" {
			fmt.Fprintf(&b, " (%s '%s')", strings.TrimSpace(e.Kind+" connection"), e.Connection)
		}
		b.WriteString("\n")
	}
	b.WriteString("More: vnetguard status (as root)")
	return b.String()
}

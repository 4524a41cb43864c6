package notify

import (
	"testing"

	"github.com/godbus/dbus/v5"
)

func TestMessage(t *testing.T) {
	e := Event{Network: "default", Backend: "libvirt", Action: "renumber",
		OldSubnets: []string{"192.168.122.0/24"}, NewSubnets: []string{"192.168.121.0/24"},
		Cause: "192.168.122.0/24", Interface: "wlan0", Connection: "Hotel", Kind: "Wi-Fi"}
	sum, body := Message(e)
	if sum != "Virtual network moved" ||
		body != "Virtual network 'default' moved from 192.168.122.0/24 to 192.168.121.0/24 because Wi-Fi 'Hotel' uses 192.168.122.0/24." {
		t.Errorf("renumber: %q %q", sum, body)
	}
	e.Action, e.NewSubnets, e.Connection, e.Kind = "destroy", nil, "", ""
	if _, body := Message(e); body != "Virtual network 'default' on 192.168.122.0/24 was stopped because the network interface wlan0 uses 192.168.122.0/24." {
		t.Errorf("destroy: %q", body)
	}
	e.Action, e.Interface = "warn", ""
	if _, body := Message(e); body != "Virtual network 'default' on 192.168.122.0/24 clashes: a network this computer joined uses 192.168.122.0/24. It was left as it is, so its virtual machines may not reach that network." {
		t.Errorf("warn: %q", body)
	}
}

// A signal's body, as the bus delivers it, parses back to the event.
func TestParseRoundTrip(t *testing.T) {
	e := Event{Network: "n", Backend: "nm", Action: "renumber", OldSubnets: []string{"10.0.0.0/24"},
		NewSubnets: []string{"10.0.1.0/24"}, Cause: "10.0.0.0/16", Interface: "tun0", Connection: "Work VPN", Kind: "VPN"}
	sig := &dbus.Signal{Path: Path, Name: Interface + "." + Member, Body: e.args()}
	got, ok := Parse(sig)
	if !ok || got.Network != e.Network || got.NewSubnets[0] != "10.0.1.0/24" || got.Kind != "VPN" || got.Connection != e.Connection {
		t.Fatalf("parse: %+v %v", got, ok)
	}
	if sig := dbus.SignatureOf(e.args()...); sig.String() != Signature {
		t.Errorf("signature %s, want %s", sig, Signature)
	}
	if _, ok := Parse(&dbus.Signal{Path: Path, Name: "x.y", Body: e.args()}); ok {
		t.Error("another member parsed")
	}
	if _, ok := Parse(&dbus.Signal{Path: Path, Name: Interface + "." + Member, Body: []any{"a"}}); ok {
		t.Error("short body parsed")
	}
}

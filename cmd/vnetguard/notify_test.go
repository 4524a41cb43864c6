package main

import (
	"net/netip"
	"testing"

	"github.com/vnetguard/vnetguard/conflict"
	"github.com/vnetguard/vnetguard/nmhook/guard"
	"github.com/vnetguard/vnetguard/nmhook/notify"
)

// Issue 11 item 4: an outcome becomes the signal's facts, and the words a
// desktop user reads.
func TestNotifyEvents(t *testing.T) {
	old, new := netip.MustParsePrefix("192.168.122.0/24"), netip.MustParsePrefix("192.168.121.0/24")
	outcomes := []guard.Outcome{
		{Network: "default", Backend: "libvirt", Action: "renumber", Moves: []conflict.Move{{From: old, To: new}},
			Conflicts: []conflict.Conflict{{Network: "default", Subnet: old, Host: netip.MustParsePrefix("192.168.122.40/24"), Interface: "wlan0"}}},
		{Network: "quiet", Action: "none"},
		{Network: "dry", Action: "renumber", DryRun: true},
		{Network: "w", Backend: "nm", Action: "warn", Conflicts: []conflict.Conflict{{Subnet: old, Host: old, Interface: "tun0"}}},
	}
	evs := notifyEvents(outcomes)
	if len(evs) != 2 {
		t.Fatalf("events %+v", evs)
	}
	_, body := notify.Message(evs[0])
	if want := "Virtual network 'default' moved from 192.168.122.0/24 to 192.168.121.0/24 because the network interface wlan0 uses 192.168.122.0/24."; body != want {
		t.Errorf("body %q, want %q", body, want)
	}
	if evs[1].Action != "warn" || evs[1].OldSubnets[0] != "192.168.122.0/24" || len(evs[1].NewSubnets) != 0 {
		t.Errorf("warn event %+v", evs[1])
	}
}

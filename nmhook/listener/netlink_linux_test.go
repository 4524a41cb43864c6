package listener

import (
	"encoding/binary"
	"syscall"
	"testing"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// Fake kernel messages: events on a virtual network's own bridge are
// ignored, everything else wakes.
func TestClassify(t *testing.T) {
	own := func(name string) bool { return name == "virbr0" }
	link := func(name string) syscall.NetlinkMessage {
		data := make([]byte, unix.SizeofIfInfomsg)
		attr := nl.NewRtAttr(unix.IFLA_IFNAME, append([]byte(name), 0))
		data = append(data, attr.Serialize()...)
		return syscall.NetlinkMessage{Header: syscall.NlMsghdr{Type: unix.RTM_NEWLINK}, Data: data}
	}
	if _, wake := classify(link("virbr0"), own); wake {
		t.Error("own bridge's link event woke the listener")
	}
	if why, wake := classify(link("wlan0"), own); !wake || why != "link wlan0" {
		t.Errorf("uplink event: %q %v", why, wake)
	}
	rule := syscall.NetlinkMessage{Header: syscall.NlMsghdr{Type: unix.RTM_NEWRULE}}
	if _, wake := classify(rule, own); !wake {
		t.Error("a policy rule must wake")
	}
	// A route whose output interface index is unknown (gone) still wakes.
	rt := make([]byte, unix.SizeofRtMsg)
	oif := make([]byte, 4)
	binary.NativeEndian.PutUint32(oif, 999999)
	rt = append(rt, nl.NewRtAttr(unix.RTA_OIF, oif).Serialize()...)
	if _, wake := classify(syscall.NetlinkMessage{Header: syscall.NlMsghdr{Type: unix.RTM_NEWROUTE}, Data: rt}, own); !wake {
		t.Error("route event did not wake")
	}
	if _, wake := classify(syscall.NetlinkMessage{Header: syscall.NlMsghdr{Type: unix.RTM_NEWNEIGH}}, own); wake {
		t.Error("neighbour events are not about addressing")
	}
}

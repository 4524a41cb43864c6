package listener

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// Fake kernel messages: events on a virtual network's own bridge are
// ignored, everything else wakes.
func TestClassify(t *testing.T) {
	own := func(name string) bool { return name == "virbr0" }
	w := &watcher{filter: Filter{Own: own}, names: map[int]string{}}
	classify := func(m syscall.NetlinkMessage, _ Own) (string, bool) {
		ev := w.classify(m)
		return ev.reason(), ev.matters
	}
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

func addrMsg(idx int, cidr string) syscall.NetlinkMessage {
	p := netip.MustParsePrefix(cidr)
	data := make([]byte, unix.SizeofIfAddrmsg)
	data[0] = unix.AF_INET
	if p.Addr().Is6() {
		data[0] = unix.AF_INET6
	}
	data[1] = byte(p.Bits())
	binary.NativeEndian.PutUint32(data[4:8], uint32(idx))
	data = append(data, nl.NewRtAttr(unix.IFA_ADDRESS, p.Addr().AsSlice()).Serialize()...)
	return syscall.NetlinkMessage{Header: syscall.NlMsghdr{Type: unix.RTM_NEWADDR}, Data: data}
}

func routeMsg(idx int, cidr string) syscall.NetlinkMessage {
	p := netip.MustParsePrefix(cidr)
	data := make([]byte, unix.SizeofRtMsg)
	data[0] = unix.AF_INET
	data[1] = byte(p.Bits())
	data = append(data, nl.NewRtAttr(unix.RTA_DST, p.Addr().AsSlice()).Serialize()...)
	oif := make([]byte, 4)
	binary.NativeEndian.PutUint32(oif, uint32(idx))
	data = append(data, nl.NewRtAttr(unix.RTA_OIF, oif).Serialize()...)
	return syscall.NetlinkMessage{Header: syscall.NlMsghdr{Type: unix.RTM_NEWROUTE}, Data: data}
}

// The incremental check: an address or route over a running network's
// subnet is hot (a pass at once), one elsewhere only wakes, one on the
// network's own bridge is ignored; names come from link messages, with no
// lookup per message.
func TestClassifyHotFromTheMessageAlone(t *testing.T) {
	network := netip.MustParsePrefix("192.168.122.0/24")
	own := func(name string) bool { return name == "virbr0" }
	threat := func(p netip.Prefix, name string) bool { return p.Overlaps(network) && name != "virbr0" }
	w := &watcher{filter: Filter{Own: own, Threatens: threat}, names: map[int]string{7: "wlan0", 3: "virbr0"}}
	for _, tc := range []struct {
		name         string
		msg          syscall.NetlinkMessage
		matters, hot bool
	}{
		{"clashing address on the uplink", addrMsg(7, "192.168.122.50/24"), true, true},
		{"address elsewhere", addrMsg(7, "10.1.2.3/24"), true, false},
		{"the network's own address on its bridge", addrMsg(3, "192.168.122.1/24"), false, false},
		{"clashing route", routeMsg(7, "192.168.0.0/16"), true, true},
		{"unrelated route", routeMsg(7, "10.0.0.0/8"), true, false},
	} {
		ev := w.classify(tc.msg)
		if matters, hot := ev.matters, ev.hot; matters != tc.matters || hot != tc.hot {
			t.Errorf("%s: matters=%v hot=%v, want %v %v", tc.name, matters, hot, tc.matters, tc.hot)
		}
	}
	// A link renamed or added is learnt from its message.
	data := make([]byte, unix.SizeofIfInfomsg)
	binary.NativeEndian.PutUint32(data[4:8], 9)
	data = append(data, nl.NewRtAttr(unix.IFLA_IFNAME, append([]byte("wg0"), 0)).Serialize()...)
	w.classify(syscall.NetlinkMessage{Header: syscall.NlMsghdr{Type: unix.RTM_NEWLINK}, Data: data})
	if ev := w.classify(addrMsg(9, "192.168.122.9/32")); !ev.hot || ev.reason() != "address 192.168.122.9/32 on wg0" {
		t.Errorf("address on a new link: %q hot=%v", ev.reason(), ev.hot)
	}
}

func serialize(m syscall.NetlinkMessage) []byte {
	b := make([]byte, unix.SizeofNlMsghdr, unix.SizeofNlMsghdr+len(m.Data))
	binary.NativeEndian.PutUint32(b[0:4], uint32(unix.SizeofNlMsghdr+len(m.Data)))
	binary.NativeEndian.PutUint16(b[4:6], m.Header.Type)
	return append(b, m.Data...)
}

// Batched reads see every datagram queued, in order, whatever their
// number; one too long for its slot counts as an overrun (the next pass
// re-reads everything). A datagram socket pair stands in for the kernel.
func TestReceiveBatches(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Skip(err)
	}
	defer unix.Close(fds[1])
	unix.SetsockoptInt(fds[1], unix.SOL_SOCKET, unix.SO_SNDBUF, 4<<20)
	tv := unix.NsecToTimeval((20 * time.Millisecond).Nanoseconds())
	if err := unix.SetsockoptTimeval(fds[0], unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	network := netip.MustParsePrefix("192.168.122.0/24")
	var hot atomic.Int32
	threat := func(p netip.Prefix, name string) bool {
		if p.Overlaps(network) {
			hot.Add(1)
			return true
		}
		return false
	}
	w := &watcher{filter: Filter{Threatens: threat}, names: map[int]string{7: "wlan0"}}
	// More than one batch of plain events, a clashing one, then a
	// datagram longer than a slot.
	for i := range 3 * batchSlots {
		if _, err := unix.Write(fds[1], serialize(addrMsg(7, fmt.Sprintf("10.1.%d.3/24", i%256)))); err != nil {
			t.Fatal(err)
		}
	}
	unix.Write(fds[1], serialize(addrMsg(7, "192.168.122.50/24")))
	long := addrMsg(7, "10.9.9.9/24")
	long.Data = append(long.Data, make([]byte, slotSize)...)
	if _, err := unix.Write(fds[1], serialize(long)); err != nil {
		t.Fatal(err)
	}
	events, urgent := make(chan string, 64), make(chan string, 1)
	ctx, cancel := context.WithCancel(context.Background())
	sock := &nlSocket{fd: fds[0]}
	done := make(chan struct{})
	go func() {
		w.receive(ctx, sock, events, urgent, slog.New(slog.NewTextHandler(io.Discard, nil)))
		close(done)
	}()
	defer func() {
		cancel()
		sock.Close()
		<-done
	}()
	timeout := time.After(5 * time.Second)
	select {
	case why := <-urgent:
		if why != "address 192.168.122.0/24 on wlan0" {
			t.Errorf("urgent wake-up %q", why)
		}
	case <-timeout:
		t.Fatal("no urgent wake-up")
	}
	for overrun := false; !overrun; {
		select {
		case why := <-events:
			overrun = why == "netlink overrun"
		case <-timeout:
			t.Fatal("the truncated datagram was not handled as an overrun")
		}
	}
	if hot.Load() != 1 {
		t.Errorf("the clashing address was judged %d times", hot.Load())
	}
}

// Forwarding turned off (all interfaces or one) wakes a pass, which turns
// it on again for the networks that need it; forwarding turned on, or any
// other configuration change, does not.
func TestClassifyForwardingOff(t *testing.T) {
	w := &watcher{names: map[int]string{7: "eth0"}}
	netconf := func(attrs map[uint16]int32) syscall.NetlinkMessage {
		data := make([]byte, sizeofNetconfmsg)
		data[0] = unix.AF_INET6
		for _, typ := range []uint16{netconfIfindex, netconfForwarding, 3} {
			if v, ok := attrs[typ]; ok {
				b := make([]byte, 4)
				binary.NativeEndian.PutUint32(b, uint32(v))
				data = append(data, nl.NewRtAttr(int(typ), b).Serialize()...)
			}
		}
		return syscall.NetlinkMessage{Header: syscall.NlMsghdr{Type: unix.RTM_NEWNETCONF}, Data: data}
	}
	for _, tc := range []struct {
		attrs map[uint16]int32
		wake  bool
		why   string
	}{
		{map[uint16]int32{netconfIfindex: -1, netconfForwarding: 0}, true, "forwarding turned off"},
		{map[uint16]int32{netconfIfindex: 7, netconfForwarding: 0}, true, "forwarding turned off on eth0"},
		{map[uint16]int32{netconfIfindex: -1, netconfForwarding: 1}, false, ""},
		{map[uint16]int32{netconfIfindex: 7, 3: 0}, false, ""}, // rp_filter
	} {
		ev := w.classify(netconf(tc.attrs))
		if ev.matters != tc.wake || (tc.wake && ev.reason() != tc.why) {
			t.Errorf("%v: woke %v (%q), want %v (%q)", tc.attrs, ev.matters, ev.reason(), tc.wake, tc.why)
		}
	}
	short := syscall.NetlinkMessage{Header: syscall.NlMsghdr{Type: unix.RTM_NEWNETCONF}, Data: []byte{1}}
	if w.classify(short).matters {
		t.Error("a truncated netconf message woke")
	}
}

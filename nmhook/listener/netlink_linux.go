package listener

import (
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"net/netip"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/vnetguard/vnetguard/nmhook/hostview"
)

// rtnlGroups are the kernel's multicast groups for everything that can make
// or unmake a clash: links, addresses, routes of every table, policy rules
// (a VPN's "ip rule" selects its table), and IPv6 prefixes (SLAAC); and
// the per-family configuration, whose forwarding switch vnetguard's own
// nat and routed networks need on.
var rtnlGroups = []uint{
	unix.RTNLGRP_LINK,
	unix.RTNLGRP_IPV4_IFADDR, unix.RTNLGRP_IPV6_IFADDR,
	unix.RTNLGRP_IPV4_ROUTE, unix.RTNLGRP_IPV6_ROUTE,
	unix.RTNLGRP_IPV4_RULE, unix.RTNLGRP_IPV6_RULE,
	unix.RTNLGRP_IPV6_PREFIX,
	unix.RTNLGRP_IPV4_NETCONF, unix.RTNLGRP_IPV6_NETCONF,
}

// Attributes of an RTM_NEWNETCONF message (linux/netconf.h; golang.org/x/sys
// does not name them).
const (
	netconfIfindex    = 1 // NETCONFA_IFINDEX
	netconfForwarding = 2 // NETCONFA_FORWARDING
	// sizeofNetconfmsg: struct netconfmsg is one byte, padded to 4.
	sizeofNetconfmsg = 4
)

// Own tells whether an interface belongs to a virtual network (its bridge
// or a port): changes there are vnetguard's or libvirt's own doing, and
// libvirt's own events report them.
type Own func(ifname string) bool

// Threatens tells, from what is already known and with no I/O, whether an
// address or route on an interface ("" if unknown) overlaps a running
// virtual network: such an event makes a pass run at once.
type Threatens func(p netip.Prefix, ifname string) bool

// Filter decides what an event means. Both funcs must be cheap: they run
// for every kernel message.
type Filter struct {
	Own       Own
	Threatens Threatens
}

// WatchNetlink sends a wake-up on events for every change the kernel
// reports, except those on own interfaces, and an urgent one for an
// address or route that overlaps a running virtual network. Whether a
// message matters is decided from the message itself and a name table kept
// from link messages: no syscall per message. A receive error (ENOBUFS
// when the socket overran) loses events, so it wakes too: the next pass
// re-reads everything. A broken socket is re-made.
func WatchNetlink(ctx context.Context, events, urgent chan<- string, f Filter, log *slog.Logger) {
	for ctx.Err() == nil {
		sock, err := subscribe(rtnlGroups, log)
		if err != nil {
			log.Error("netlink subscribe failed; retrying", "error", err)
			sleep(ctx, time.Second)
			continue
		}
		// A read waits in Go's poller; closing the socket on ctx end
		// ends it.
		stop := context.AfterFunc(ctx, sock.Close)
		// Names are learnt from link messages after one dump; a link made
		// between the subscription and the dump is in both.
		w := &watcher{filter: f, names: linkNames()}
		wake(events, "netlink subscribed")
		w.receive(ctx, sock, events, urgent, log)
		stop()
		sock.Close()
		sleep(ctx, 100*time.Millisecond)
	}
}

// receiveBuffer is the netlink socket's receive buffer (SO_RCVBUFFORCE).
const receiveBuffer = 8 << 20

// plainEvery is the least time between two plain wake-ups: a pass after a
// plain event waits for a debounce of quiet (300 ms) anyway, so sending
// more often only costs CPU in a storm. Urgent ones are never held back.
const plainEvery = 20 * time.Millisecond

type watcher struct {
	filter    Filter
	names     map[int]string
	lastPlain time.Time
}

func linkNames() map[int]string {
	names, _, err := hostview.Links()
	if err != nil {
		return map[int]string{} // learnt from link messages as they come
	}
	return names
}

// nlSocket is a netlink multicast subscription read with plain blocking
// reads on its reader's thread, a receive timeout letting it see the
// context end. It is ours rather than nl.Subscribe's because
// nl.NetlinkSocket.Receive allocates 64 KiB and a slice per message on
// every read, and goes through Go's poller, which parks and wakes the
// reader per message: in an event storm that was most of the daemon's CPU.
// Here the buffers are reused and messages are walked in place.
//
// The kernel queues each notification as a datagram of its own, so one
// read returns one message. Reads are batched instead: one recvmmsg
// waits for the first datagram and takes up to batchSlots that are
// already queued. While messages keep coming back to back (a storm), the
// reader also pauses stormPause between batches, so that a wake-up and a
// system call serve a few hundred messages rather than one; an isolated
// event is read at once.
type nlSocket struct {
	fd     int
	closed atomic.Bool
}

// readTimeout bounds one blocking read, so that Close is seen soon.
const readTimeout = 200 * time.Millisecond

const (
	// batchSlots is how many datagrams one read takes at most.
	batchSlots = 64
	// slotSize is one datagram's buffer: a notification is at most a few
	// KiB (a link's, with every attribute); a longer one comes back
	// truncated and is handled as an overrun (everything re-read).
	slotSize = 16 << 10
	// stormGap: a batch that starts within this time of the previous
	// one's end means a storm.
	stormGap = time.Millisecond
	// stormPause is the pause between batches in a storm: the most an
	// event waits for its batch; far below what the socket's buffer holds
	// at any rate the kernel can produce.
	stormPause = 2 * time.Millisecond
)

func subscribe(groups []uint, log *slog.Logger) (*nlSocket, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, err
	}
	sa := &unix.SockaddrNetlink{Family: unix.AF_NETLINK}
	for _, g := range groups {
		sa.Groups |= 1 << (g - 1)
	}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return nil, err
	}
	// A burst of changes (a VPN pushing thousands of routes) must not
	// overrun the socket: each overrun costs a full re-read.
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, receiveBuffer); err != nil {
		log.Debug("cannot enlarge the netlink receive buffer", "error", err)
	}
	tv := unix.NsecToTimeval(readTimeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return &nlSocket{fd: fd}, nil
}

// Close makes the reader stop at its next timeout; the reader closes the
// descriptor (closing it under a blocked read would not wake that read).
func (s *nlSocket) Close() { s.closed.Store(true) }

// mmsghdr is struct mmsghdr.
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
}

// batch is the reused buffers of batched reads.
type batch struct {
	bufs  [][]byte
	iovs  []unix.Iovec
	hdrs  []mmsghdr
	slots []byte
}

func newBatch(n, size int) *batch {
	b := &batch{slots: make([]byte, n*size), iovs: make([]unix.Iovec, n), hdrs: make([]mmsghdr, n), bufs: make([][]byte, n)}
	for i := range n {
		b.bufs[i] = b.slots[i*size : (i+1)*size]
		b.iovs[i].Base = &b.bufs[i][0]
		b.iovs[i].SetLen(size)
		b.hdrs[i].hdr.Iov = &b.iovs[i]
		b.hdrs[i].hdr.SetIovlen(1)
	}
	return b
}

// read waits for at least one datagram (flags 0) or takes what is queued
// (unix.MSG_DONTWAIT) and returns how many slots it filled; 0, nil on a
// timeout or when nothing is queued.
func (s *nlSocket) read(b *batch, flags int) (int, error) {
	if s.closed.Load() {
		return 0, errors.New("netlink socket closed")
	}
	for i := range b.hdrs {
		b.hdrs[i].len = 0
		b.hdrs[i].hdr.Flags = 0
	}
	n, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(s.fd), uintptr(unsafe.Pointer(&b.hdrs[0])),
		uintptr(len(b.hdrs)), uintptr(flags|unix.MSG_WAITFORONE), 0, 0)
	if errno != 0 {
		if errno == unix.EAGAIN || errno == unix.EINTR {
			return 0, nil
		}
		return 0, errno
	}
	return int(n), nil
}

// receive reads the socket in batches of datagrams and walks their
// messages in place.
func (w *watcher) receive(ctx context.Context, sock *nlSocket, events, urgent chan<- string, log *slog.Logger) {
	b := newBatch(batchSlots, slotSize)
	defer unix.Close(sock.fd)
	var lastEnd time.Time
	for ctx.Err() == nil {
		n, err := sock.read(b, 0)
		if err == nil && n == 0 {
			continue // a timeout: look at ctx again
		}
		if err != nil {
			switch {
			case errors.Is(err, unix.EINTR):
				continue
			case errors.Is(err, unix.ENOBUFS):
				w.overrun(events, log)
				continue
			}
			if ctx.Err() == nil {
				log.Warn("netlink receive failed; resubscribing", "error", err)
				wake(events, "netlink resubscribe")
			}
			return
		}
		start := time.Now()
		// Take everything queued, a full batch at a time.
		for n > 0 {
			w.walkBatch(b, n, events, urgent, log)
			if n < len(b.hdrs) {
				break
			}
			if n, err = sock.read(b, unix.MSG_DONTWAIT); errors.Is(err, unix.ENOBUFS) {
				w.overrun(events, log)
			}
		}
		if start.Sub(lastEnd) < stormGap {
			sleep(ctx, stormPause)
		}
		lastEnd = time.Now()
	}
}

// walkBatch handles the first n datagrams of a batch.
func (w *watcher) walkBatch(b *batch, n int, events, urgent chan<- string, log *slog.Logger) {
	for i := range n {
		h := &b.hdrs[i]
		if h.hdr.Flags&unix.MSG_TRUNC != 0 {
			w.overrun(events, log) // part of a message lost
			continue
		}
		w.walk(b.bufs[i][:min(int(h.len), len(b.bufs[i]))], events, urgent)
	}
}

// overrun: messages were lost; the next pass re-reads everything.
func (w *watcher) overrun(events chan<- string, log *slog.Logger) {
	log.Warn("netlink overrun; re-reading everything")
	w.names = linkNames()
	wake(events, "netlink overrun")
}

// walk handles the messages of one datagram in place.
func (w *watcher) walk(b []byte, events, urgent chan<- string) {
	for len(b) >= unix.SizeofNlMsghdr {
		l := int(binary.NativeEndian.Uint32(b[0:4]))
		if l < unix.SizeofNlMsghdr || l > len(b) {
			return
		}
		m := syscall.NetlinkMessage{
			Header: syscall.NlMsghdr{Len: uint32(l), Type: binary.NativeEndian.Uint16(b[4:6])},
			Data:   b[unix.SizeofNlMsghdr:l],
		}
		w.handle(m, events, urgent)
		l = (l + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1)
		if l > len(b) {
			return
		}
		b = b[l:]
	}
}

func (w *watcher) handle(m syscall.NetlinkMessage, events, urgent chan<- string) {
	ev := w.classify(m)
	switch {
	case ev.hot:
		wakeWith(urgent, ev)
	case ev.matters:
		if now := time.Now(); now.Sub(w.lastPlain) >= plainEvery {
			w.lastPlain = now
			wakeWith(events, ev)
		}
	}
}

// event is what one kernel message means: whether it matters, whether it
// is hot (a new address or route over a running virtual network's
// subnet), and what to call it, put into words only when a wake-up is
// sent (a storm of messages then allocates nothing).
type event struct {
	matters, hot bool
	kind         string       // "link", "address", "route", "policy rule", ...
	prefix       netip.Prefix // the address or route, when known
	ifname       string
}

func (e event) reason() string {
	switch {
	case e.prefix.IsValid() && e.kind == "route":
		return "route " + e.prefix.String() + " via " + e.ifname
	case e.prefix.IsValid():
		return e.kind + " " + e.prefix.String() + " on " + e.ifname
	case e.ifname != "" && e.kind == "route":
		return "route via " + e.ifname
	case e.ifname != "" && e.kind == "link":
		return "link " + e.ifname
	case e.ifname != "":
		return e.kind + " on " + e.ifname
	}
	return e.kind
}

// classify judges a message from itself and the name table alone.
func (w *watcher) classify(m syscall.NetlinkMessage) event {
	own := func(name string) bool { return name != "" && w.filter.Own != nil && w.filter.Own(name) }
	threat := func(p netip.Prefix, name string) bool {
		return w.filter.Threatens != nil && w.filter.Threatens(p, name)
	}
	switch m.Header.Type {
	case unix.RTM_NEWLINK, unix.RTM_DELLINK:
		idx, name := linkIndexName(m.Data)
		if idx > 0 {
			if m.Header.Type == unix.RTM_DELLINK {
				delete(w.names, idx)
			} else if name != "" {
				w.names[idx] = name
			}
		}
		return event{matters: !own(name), kind: "link", ifname: name}
	case unix.RTM_NEWADDR, unix.RTM_DELADDR:
		p, idx, ok := addrOf(m.Data)
		if !ok {
			return event{matters: true, kind: "address"}
		}
		name := w.names[idx]
		if own(name) {
			return event{kind: "address", ifname: name}
		}
		return event{matters: true, hot: m.Header.Type == unix.RTM_NEWADDR && threat(p, name),
			kind: "address", prefix: p, ifname: name}
	case unix.RTM_NEWROUTE, unix.RTM_DELROUTE:
		p, idx, ok := routeOf(m.Data)
		name := w.names[idx]
		if own(name) {
			return event{kind: "route", ifname: name}
		}
		if !ok {
			return event{matters: true, kind: "route", ifname: name}
		}
		return event{matters: true, hot: m.Header.Type == unix.RTM_NEWROUTE && threat(p, name),
			kind: "route", prefix: p, ifname: name}
	case unix.RTM_NEWRULE, unix.RTM_DELRULE:
		return event{matters: true, kind: "policy rule"}
	case unix.RTM_NEWPREFIX:
		return event{matters: true, kind: "IPv6 prefix"}
	case unix.RTM_NEWNETCONF:
		// Forwarding turned off (on all interfaces, or one): the pass
		// turns it on again, with a warning, for the networks that need
		// it. Every other configuration change is no concern.
		if idx, off := forwardingOff(m.Data); off {
			return event{matters: true, kind: "forwarding turned off", ifname: w.names[idx]}
		}
	}
	return event{}
}

// forwardingOff reads a netconfmsg: whether it reports forwarding 0, and
// for which interface index (-1 all, -2 the default).
func forwardingOff(data []byte) (int, bool) {
	if len(data) < sizeofNetconfmsg {
		return 0, false
	}
	idx, off := 0, false
	hostview.WalkAttrs(data[sizeofNetconfmsg:], func(t uint16, v []byte) {
		if len(v) < 4 {
			return
		}
		n := int(int32(binary.NativeEndian.Uint32(v)))
		switch t {
		case netconfIfindex:
			idx = n
		case netconfForwarding:
			off = n == 0
		}
	})
	return idx, off
}

func linkIndexName(data []byte) (int, string) {
	if len(data) < unix.SizeofIfInfomsg {
		return 0, ""
	}
	idx := int(int32(binary.NativeEndian.Uint32(data[4:8])))
	name := ""
	hostview.WalkAttrs(data[unix.SizeofIfInfomsg:], func(t uint16, v []byte) {
		if t == unix.IFLA_IFNAME && name == "" {
			name = string(trimNul(v))
		}
	})
	return idx, name
}

// addrOf reads an ifaddrmsg: the address with its prefix length, and the
// interface index.
func addrOf(data []byte) (netip.Prefix, int, bool) {
	if len(data) < unix.SizeofIfAddrmsg {
		return netip.Prefix{}, 0, false
	}
	bits := int(data[1])
	idx := int(binary.NativeEndian.Uint32(data[4:8]))
	var addr, local netip.Addr
	hostview.WalkAttrs(data[unix.SizeofIfAddrmsg:], func(t uint16, v []byte) {
		switch t {
		case unix.IFA_ADDRESS:
			addr, _ = netip.AddrFromSlice(v)
		case unix.IFA_LOCAL:
			local, _ = netip.AddrFromSlice(v)
		}
	})
	if local.IsValid() {
		addr = local // point-to-point: IFA_ADDRESS is the peer
	}
	if !addr.IsValid() {
		return netip.Prefix{}, idx, false
	}
	p, err := addr.Unmap().Prefix(bits)
	return p, idx, err == nil
}

// routeOf reads an rtmsg: the destination prefix and the output interface
// index (0 when it has none, e.g. a blackhole).
func routeOf(data []byte) (netip.Prefix, int, bool) {
	if len(data) < unix.SizeofRtMsg {
		return netip.Prefix{}, 0, false
	}
	family, bits := data[0], int(data[1])
	var dst netip.Addr
	idx := 0
	hostview.WalkAttrs(data[unix.SizeofRtMsg:], func(t uint16, v []byte) {
		switch t {
		case unix.RTA_DST:
			dst, _ = netip.AddrFromSlice(v)
		case unix.RTA_OIF:
			if len(v) >= 4 {
				idx = int(binary.NativeEndian.Uint32(v))
			}
		}
	})
	if !dst.IsValid() {
		if family == unix.AF_INET6 {
			dst = netip.IPv6Unspecified()
		} else {
			dst = netip.IPv4Unspecified()
		}
	}
	p, err := dst.Unmap().Prefix(bits)
	return p, idx, err == nil
}

func trimNul(b []byte) []byte {
	for i, c := range b {
		if c == 0 {
			return b[:i]
		}
	}
	return b
}

// wakeWith is wake with the reason put into words only when there is
// room for it.
func wakeWith(events chan<- string, ev event) {
	if len(events) < cap(events) {
		wake(events, ev.reason())
	}
}

// wake never blocks: a pending wake-up already covers this one.
func wake(events chan<- string, why string) {
	select {
	case events <- why:
	default:
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

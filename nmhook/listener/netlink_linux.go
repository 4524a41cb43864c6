package listener

import (
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"net/netip"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// rtnlGroups are the kernel's multicast groups for everything that can make
// or unmake a clash: links, addresses, routes of every table, policy rules
// (a VPN's "ip rule" selects its table), and IPv6 prefixes (SLAAC).
var rtnlGroups = []uint{
	unix.RTNLGRP_LINK,
	unix.RTNLGRP_IPV4_IFADDR, unix.RTNLGRP_IPV6_IFADDR,
	unix.RTNLGRP_IPV4_ROUTE, unix.RTNLGRP_IPV6_ROUTE,
	unix.RTNLGRP_IPV4_RULE, unix.RTNLGRP_IPV6_RULE,
	unix.RTNLGRP_IPV6_PREFIX,
}

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
		sock, err := nl.Subscribe(unix.NETLINK_ROUTE, rtnlGroups...)
		if err != nil {
			log.Error("netlink subscribe failed; retrying", "error", err)
			sleep(ctx, time.Second)
			continue
		}
		// Receive blocks; closing the socket on ctx end unblocks it.
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

type watcher struct {
	filter Filter
	names  map[int]string
}

func linkNames() map[int]string {
	names := map[int]string{}
	links, err := netlink.LinkList()
	if err != nil {
		return names
	}
	for _, l := range links {
		names[l.Attrs().Index] = l.Attrs().Name
	}
	return names
}

func (w *watcher) receive(ctx context.Context, sock *nl.NetlinkSocket, events, urgent chan<- string, log *slog.Logger) {
	for ctx.Err() == nil {
		msgs, _, err := sock.Receive()
		if err != nil {
			if errors.Is(err, syscall.ENOBUFS) {
				log.Warn("netlink overrun; re-reading everything")
				w.names = linkNames()
				wake(events, "netlink overrun")
				continue
			}
			if ctx.Err() == nil {
				log.Warn("netlink receive failed; resubscribing", "error", err)
				wake(events, "netlink resubscribe")
			}
			return
		}
		for _, m := range msgs {
			why, matters, hot := w.classify(m)
			switch {
			case hot:
				wake(urgent, why)
			case matters:
				wake(events, why)
			}
		}
	}
}

// classify names an event, says whether it matters, and whether it is hot:
// a new address or route over a running virtual network's subnet.
func (w *watcher) classify(m syscall.NetlinkMessage) (why string, matters, hot bool) {
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
		return "link " + name, !own(name), false
	case unix.RTM_NEWADDR, unix.RTM_DELADDR:
		p, idx, ok := addrOf(m.Data)
		if !ok {
			return "address", true, false
		}
		name := w.names[idx]
		if own(name) {
			return "address on " + name, false, false
		}
		return "address " + p.String() + " on " + name, true, m.Header.Type == unix.RTM_NEWADDR && threat(p, name)
	case unix.RTM_NEWROUTE, unix.RTM_DELROUTE:
		p, idx, ok := routeOf(m.Data)
		name := w.names[idx]
		if own(name) {
			return "route via " + name, false, false
		}
		if !ok {
			return "route via " + name, true, false
		}
		return "route " + p.String() + " via " + name, true, m.Header.Type == unix.RTM_NEWROUTE && threat(p, name)
	case unix.RTM_NEWRULE, unix.RTM_DELRULE:
		return "policy rule", true, false
	case unix.RTM_NEWPREFIX:
		return "IPv6 prefix", true, false
	}
	return "", false, false
}

func linkIndexName(data []byte) (int, string) {
	if len(data) < unix.SizeofIfInfomsg {
		return 0, ""
	}
	idx := int(int32(binary.NativeEndian.Uint32(data[4:8])))
	attrs, err := nl.ParseRouteAttr(data[unix.SizeofIfInfomsg:])
	if err != nil {
		return idx, ""
	}
	for _, a := range attrs {
		if a.Attr.Type == unix.IFLA_IFNAME {
			return idx, string(trimNul(a.Value))
		}
	}
	return idx, ""
}

// addrOf reads an ifaddrmsg: the address with its prefix length, and the
// interface index.
func addrOf(data []byte) (netip.Prefix, int, bool) {
	if len(data) < unix.SizeofIfAddrmsg {
		return netip.Prefix{}, 0, false
	}
	bits := int(data[1])
	idx := int(binary.NativeEndian.Uint32(data[4:8]))
	attrs, err := nl.ParseRouteAttr(data[unix.SizeofIfAddrmsg:])
	if err != nil {
		return netip.Prefix{}, idx, false
	}
	var addr, local netip.Addr
	for _, a := range attrs {
		switch a.Attr.Type {
		case unix.IFA_ADDRESS:
			addr, _ = netip.AddrFromSlice(a.Value)
		case unix.IFA_LOCAL:
			local, _ = netip.AddrFromSlice(a.Value)
		}
	}
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
	attrs, err := nl.ParseRouteAttr(data[unix.SizeofRtMsg:])
	if err != nil {
		return netip.Prefix{}, 0, false
	}
	var dst netip.Addr
	idx := 0
	for _, a := range attrs {
		switch a.Attr.Type {
		case unix.RTA_DST:
			dst, _ = netip.AddrFromSlice(a.Value)
		case unix.RTA_OIF:
			if len(a.Value) >= 4 {
				idx = int(binary.NativeEndian.Uint32(a.Value))
			}
		}
	}
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

package listener

import (
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
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

// WatchNetlink sends a wake-up on events for every change the kernel
// reports, except those on own interfaces. A receive error (ENOBUFS when
// the socket overran) loses events, so it wakes too: the next pass re-reads
// everything. A broken socket is re-made.
func WatchNetlink(ctx context.Context, events chan<- string, own Own, log *slog.Logger) {
	for ctx.Err() == nil {
		sock, err := nl.Subscribe(unix.NETLINK_ROUTE, rtnlGroups...)
		if err != nil {
			log.Error("netlink subscribe failed; retrying", "error", err)
			sleep(ctx, time.Second)
			continue
		}
		// Receive blocks; closing the socket on ctx end unblocks it.
		stop := context.AfterFunc(ctx, sock.Close)
		wake(events, "netlink subscribed")
		receive(ctx, sock, events, own, log)
		stop()
		sock.Close()
		sleep(ctx, 100*time.Millisecond)
	}
}

func receive(ctx context.Context, sock *nl.NetlinkSocket, events chan<- string, own Own, log *slog.Logger) {
	for ctx.Err() == nil {
		msgs, _, err := sock.Receive()
		if err != nil {
			if errors.Is(err, syscall.ENOBUFS) {
				log.Warn("netlink overrun; re-reading everything")
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
			if why, ok := classify(m, own); ok {
				wake(events, why)
			}
		}
	}
}

// classify names an event and says whether it matters.
func classify(m syscall.NetlinkMessage, own Own) (string, bool) {
	switch m.Header.Type {
	case unix.RTM_NEWLINK, unix.RTM_DELLINK:
		name := linkName(m.Data)
		return "link " + name, name == "" || !own(name)
	case unix.RTM_NEWADDR, unix.RTM_DELADDR:
		if len(m.Data) >= 8 {
			idx := binary.NativeEndian.Uint32(m.Data[4:8])
			name := nameOf(int(idx))
			return "address on " + name, name == "" || !own(name)
		}
		return "address", true
	case unix.RTM_NEWROUTE, unix.RTM_DELROUTE:
		if idx := routeOIF(m.Data); idx > 0 {
			name := nameOf(idx)
			return "route via " + name, name == "" || !own(name)
		}
		return "route", true
	case unix.RTM_NEWRULE, unix.RTM_DELRULE:
		return "policy rule", true
	case unix.RTM_NEWPREFIX:
		return "IPv6 prefix", true
	}
	return "", false
}

func linkName(data []byte) string {
	if len(data) < unix.SizeofIfInfomsg {
		return ""
	}
	attrs, err := nl.ParseRouteAttr(data[unix.SizeofIfInfomsg:])
	if err != nil {
		return ""
	}
	for _, a := range attrs {
		if a.Attr.Type == unix.IFLA_IFNAME {
			return string(trimNul(a.Value))
		}
	}
	return ""
}

func routeOIF(data []byte) int {
	if len(data) < unix.SizeofRtMsg {
		return 0
	}
	attrs, err := nl.ParseRouteAttr(data[unix.SizeofRtMsg:])
	if err != nil {
		return 0
	}
	for _, a := range attrs {
		if a.Attr.Type == unix.RTA_OIF && len(a.Value) >= 4 {
			return int(binary.NativeEndian.Uint32(a.Value))
		}
	}
	return 0
}

func nameOf(idx int) string {
	l, err := netlink.LinkByIndex(idx)
	if err != nil {
		return ""
	}
	return l.Attrs().Name
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

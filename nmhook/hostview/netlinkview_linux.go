package hostview

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/vnetguard/vnetguard/conflict"
)

// dumpRetries bounds retries of a dump the kernel interrupted because the
// table changed under it; the results of such a dump are partial.
const dumpRetries = 5

// Read returns every address and every route (all tables, both families)
// of the current network namespace.
func Read() (conflict.HostView, error) {
	v, _, err := ReadWithPorts(nil)
	return v, err
}

// ReadWithPorts is Read plus every bridge's ports, from the same link dump.
// With keep, only routes whose destination keep accepts are kept (the
// others are counted in the view's SkippedRoutes): a check needs only
// routes over the virtual networks' subnets, and a host with a full
// internet table then holds none of it.
func ReadWithPorts(keep func(netip.Prefix) bool) (conflict.HostView, map[string][]string, error) {
	h := &netlink.Handle{}
	var view conflict.HostView
	var ports map[string][]string
	err := retryDump(func() error {
		names, p, err := linkTable()
		if err != nil {
			return err
		}
		ports = p
		addrs, err := h.AddrList(nil, unix.AF_UNSPEC)
		if err != nil {
			return fmt.Errorf("list addresses: %w", err)
		}
		view = Convert(names, addrs, nil)
		// Table 0 with a dump asks the kernel for every table; streamed
		// and decoded only for what is kept (see dumpRoutes).
		view.Routes, view.SkippedRoutes, err = dumpRoutes(names, keep)
		if err != nil {
			return fmt.Errorf("list routes: %w", err)
		}
		return nil
	})
	return view, ports, err
}

// ReadUnnamed is ReadWithPorts without the link dump: addresses and routes
// with no interface names, for a caller that compares only prefixes (the
// dispatcher hook's check of its environment).
func ReadUnnamed(keep func(netip.Prefix) bool) (conflict.HostView, error) {
	h := &netlink.Handle{}
	var view conflict.HostView
	err := retryDump(func() error {
		addrs, err := h.AddrList(nil, unix.AF_UNSPEC)
		if err != nil {
			return fmt.Errorf("list addresses: %w", err)
		}
		view = Convert(nil, addrs, nil)
		view.Routes, view.SkippedRoutes, err = dumpRoutes(nil, keep)
		if err != nil {
			return fmt.Errorf("list routes: %w", err)
		}
		return nil
	})
	return view, err
}

// linkTable dumps the links once: their names by index, and each
// bridge's ports. It reads the kernel's messages itself rather than
// through netlink.LinkList, which decodes every attribute of every link
// (statistics, driver data, a dozen allocations each) when only the index,
// the name and the master are needed; the kernel is asked to leave the
// statistics out too. On a host with a hundred bridges that was a quarter
// of a dispatcher run.
func linkTable() (map[int]string, map[string][]string, error) {
	names := map[int]string{}
	type port struct{ idx, master int }
	var enslaved []port // in dump order, as the ports are listed
	req := nl.NewNetlinkRequest(unix.RTM_GETLINK, unix.NLM_F_DUMP)
	req.AddData(nl.NewIfInfomsg(unix.AF_UNSPEC))
	req.AddData(nl.NewRtAttr(unix.IFLA_EXT_MASK, nl.Uint32Attr(rtextFilterSkipStats)))
	err := req.ExecuteIter(unix.NETLINK_ROUTE, unix.RTM_NEWLINK, func(m []byte) bool {
		idx, name, master, ok := LinkIndexNameMaster(m)
		if ok {
			names[idx] = name
			if master != 0 {
				enslaved = append(enslaved, port{idx, master})
			}
		}
		return true
	})
	if err != nil {
		return nil, nil, fmt.Errorf("list links: %w", err)
	}
	ports := map[string][]string{}
	for _, p := range enslaved {
		ports[names[p.master]] = append(ports[names[p.master]], names[p.idx])
	}
	return names, ports, nil
}

// rtextFilterSkipStats (RTEXT_FILTER_SKIP_STATS) asks a link dump to leave
// out the statistics; older kernels ignore it.
const rtextFilterSkipStats = 1 << 3

// LinkIndexNameMaster reads an ifinfomsg (a link message's payload): the
// index, the name and the master's index (0 for none); false when it is
// too short to hold an index.
func LinkIndexNameMaster(m []byte) (idx int, name string, master int, ok bool) {
	if len(m) < unix.SizeofIfInfomsg {
		return 0, "", 0, false
	}
	idx = int(int32(binary.NativeEndian.Uint32(m[4:8])))
	WalkAttrs(m[unix.SizeofIfInfomsg:], func(t uint16, v []byte) {
		switch t {
		case unix.IFLA_IFNAME:
			if name == "" {
				name = string(trimNul(v))
			}
		case unix.IFLA_MASTER:
			if len(v) >= 4 {
				master = int(int32(binary.NativeEndian.Uint32(v)))
			}
		}
	})
	return idx, name, master, true
}

func trimNul(b []byte) []byte {
	for i, c := range b {
		if c == 0 {
			return b[:i]
		}
	}
	return b
}

func retryDump(f func() error) error {
	var err error
	for i := 0; i < dumpRetries; i++ {
		if err = f(); !errors.Is(err, netlink.ErrDumpInterrupted) {
			return err
		}
	}
	return fmt.Errorf("netlink dump kept being interrupted by changes: %w", err)
}

// Links returns the links' names by index and each bridge's ports, from
// one link dump.
func Links() (names map[int]string, ports map[string][]string, err error) {
	err = retryDump(func() error {
		names, ports, err = linkTable()
		return err
	})
	return names, ports, err
}

// BridgePorts lists the interfaces enslaved to bridge; a missing bridge has
// no ports and is not an error (an inactive network has no bridge).
func BridgePorts(bridge string) ([]string, error) {
	if bridge == "" {
		return nil, nil
	}
	_, ports, err := Links()
	return ports[bridge], err
}

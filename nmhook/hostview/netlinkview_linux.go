package hostview

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
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
		names, p, err := linkTable(h)
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

// linkTable dumps the links once: their names by index, and each
// bridge's ports.
func linkTable(h *netlink.Handle) (map[int]string, map[string][]string, error) {
	links, err := h.LinkList()
	if err != nil {
		return nil, nil, fmt.Errorf("list links: %w", err)
	}
	names := make(map[int]string, len(links))
	for _, l := range links {
		names[l.Attrs().Index] = l.Attrs().Name
	}
	ports := map[string][]string{}
	for _, l := range links {
		if m := l.Attrs().MasterIndex; m != 0 {
			ports[names[m]] = append(ports[names[m]], l.Attrs().Name)
		}
	}
	return names, ports, nil
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
	h := &netlink.Handle{}
	err = retryDump(func() error {
		names, ports, err = linkTable(h)
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

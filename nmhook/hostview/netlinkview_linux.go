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
		links, err := h.LinkList()
		if err != nil {
			return fmt.Errorf("list links: %w", err)
		}
		names := make(map[int]string, len(links))
		for _, l := range links {
			names[l.Attrs().Index] = l.Attrs().Name
		}
		ports = portsOf(links, names)
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

func portsOf(links []netlink.Link, names map[int]string) map[string][]string {
	ports := map[string][]string{}
	for _, l := range links {
		if m := l.Attrs().MasterIndex; m != 0 {
			ports[names[m]] = append(ports[names[m]], l.Attrs().Name)
		}
	}
	return ports
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

// BridgePorts lists the interfaces enslaved to bridge; a missing bridge has
// no ports and is not an error (an inactive network has no bridge).
func BridgePorts(h *netlink.Handle, bridge string) ([]string, error) {
	if bridge == "" {
		return nil, nil
	}
	all, err := AllBridgePorts(h)
	return all[bridge], err
}

// AllBridgePorts maps every bridge of the namespace to its ports, in one
// link dump.
func AllBridgePorts(h *netlink.Handle) (map[string][]string, error) {
	if h == nil {
		h = &netlink.Handle{}
	}
	var ports map[string][]string
	err := retryDump(func() error {
		links, err := h.LinkList()
		if err != nil {
			return fmt.Errorf("list links: %w", err)
		}
		names := make(map[int]string, len(links))
		for _, l := range links {
			names[l.Attrs().Index] = l.Attrs().Name
		}
		ports = portsOf(links, names)
		return nil
	})
	return ports, err
}

package hostview

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/vnetguard/vnetguard/conflict"
)

// bounceDown is how long a re-plugged port stays down: long enough for the
// guest side to see the carrier drop and ask for a new lease on its return.
const bounceDown = 200 * time.Millisecond

// Live is the real host: the current network namespace via netlink.
type Live struct{}

// Read returns the host view and every bridge's ports, in one link dump;
// see ReadWithPorts for keep.
func (Live) Read(keep func(netip.Prefix) bool) (conflict.HostView, map[string][]string, error) {
	return ReadWithPorts(keep)
}

// Replug puts ports back into bridge (libvirt does not re-attach them after
// a network restart). With bounce, each is also set down for a moment so
// that a guest on a veth (a namespace, a bridge-helper guest) sees its
// carrier drop and re-leases; a qemu guest does not see that (qemu owns
// its NIC's link state): its link is bounced through libvirt instead.
// Ports that vanished meanwhile (a guest shut down) are skipped; a port
// already in the bridge is fine.
func Replug(bridge string, ports []string, bounce bool) error {
	if len(ports) == 0 {
		return nil
	}
	br, err := netlink.LinkByName(bridge)
	if err != nil {
		return fmt.Errorf("bridge %s after restart: %w", bridge, err)
	}
	var errs []error
	var bounced []netlink.Link
	for _, name := range ports {
		l, err := netlink.LinkByName(name)
		if err != nil {
			var nf netlink.LinkNotFoundError
			if errors.As(err, &nf) {
				continue
			}
			errs = append(errs, fmt.Errorf("port %s: %w", name, err))
			continue
		}
		if bounce {
			if err := netlink.LinkSetDown(l); err != nil {
				errs = append(errs, fmt.Errorf("port %s down: %w", name, err))
			}
		}
		if l.Attrs().MasterIndex != br.Attrs().Index {
			if err := netlink.LinkSetMaster(l, br); err != nil {
				errs = append(errs, fmt.Errorf("port %s into %s: %w", name, bridge, err))
				continue
			}
		}
		bounced = append(bounced, l)
	}
	if bounce && len(bounced) > 0 {
		time.Sleep(bounceDown)
	}
	for _, l := range bounced {
		if err := netlink.LinkSetUp(l); err != nil {
			errs = append(errs, fmt.Errorf("port %s up: %w", l.Attrs().Name, err))
		}
	}
	return errors.Join(errs...)
}

// RemoveStaleBridge deletes the bridge called name, if there is one. A
// network whose stop was interrupted (libvirtd killed in the middle) can
// leave its bridge behind while libvirt counts it as stopped; starting it
// again then fails with "File exists". Only a bridge is ever deleted.
func RemoveStaleBridge(name string) (bool, error) {
	l, err := netlink.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return false, nil
		}
		return false, err
	}
	if l.Type() != "bridge" {
		return false, fmt.Errorf("%s is a %s, not a bridge; left alone", name, l.Type())
	}
	if err := netlink.LinkDel(l); err != nil {
		return false, fmt.Errorf("remove stale bridge %s: %w", name, err)
	}
	return true, nil
}

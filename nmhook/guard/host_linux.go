package guard

import (
	"errors"
	"fmt"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/vnetguard/vnetguard/conflict"
	"github.com/vnetguard/vnetguard/nmhook/hostview"
)

// bounceDown is how long a re-plugged port stays down: long enough for the
// guest side to see the carrier drop and ask for a new lease on its return.
const bounceDown = 200 * time.Millisecond

// NetlinkHost is the real host: the current network namespace via netlink.
type NetlinkHost struct{}

func (NetlinkHost) Read() (conflict.HostView, error) { return hostview.Read(nil) }

func (NetlinkHost) Ports() (map[string][]string, error) {
	return hostview.AllBridgePorts(nil)
}

// Replug puts ports back into bridge (libvirt does not re-attach them after
// a network restart) and bounces each so its guest re-leases at once.
// Ports that vanished meanwhile (a guest shut down) are skipped.
func (NetlinkHost) Replug(bridge string, ports []string) error {
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
		if err := netlink.LinkSetDown(l); err != nil {
			errs = append(errs, fmt.Errorf("port %s down: %w", name, err))
		}
		if l.Attrs().MasterIndex != br.Attrs().Index {
			if err := netlink.LinkSetMaster(l, br); err != nil {
				errs = append(errs, fmt.Errorf("port %s into %s: %w", name, bridge, err))
				continue
			}
		}
		bounced = append(bounced, l)
	}
	time.Sleep(bounceDown)
	for _, l := range bounced {
		if err := netlink.LinkSetUp(l); err != nil {
			errs = append(errs, fmt.Errorf("port %s up: %w", l.Attrs().Name, err))
		}
	}
	return errors.Join(errs...)
}

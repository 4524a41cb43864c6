package profiles

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/godbus/dbus/v5"

	"github.com/vnetguard/vnetguard/nmhook/nm"
	"github.com/vnetguard/vnetguard/nmhook/state"
)

// A bridged network (<forward mode='bridge'> with <interface dev=UPLINK>)
// takes its uplink over: the bridge profile carries the host's addressing
// (DHCPv4 and SLAAC from the LAN, ipv4/ipv6 method auto) and a port profile
// enslaves the uplink, with no IP configuration of its own and accept_ra=0.
// The profile the uplink had active before is remembered (LiveDir/
// NAME.uplink, its UUID) and activated again by Stop.

func (s Store) uplinkPath(name string) string { return filepath.Join(s.LiveDir, name+".uplink") }

// startBridged activates the bridge and its port and waits for the bridge;
// on a failure it undoes what it did (the uplink gets its profile back).
func (b *Backend) startBridged(ctx context.Context, c *nm.Client, p Profile, bridge dbus.ObjectPath) (err error) {
	dev, ok, err := c.DeviceByIface(ctx, p.Uplink)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("NetworkManager has no device %s (the uplink)", p.Uplink)
	}
	prev := ""
	if conn, err := c.DeviceActiveProfile(dev); err != nil {
		return err
	} else if conn != "" {
		if s, err := c.GetSettings(ctx, conn); err == nil && OwnerOf(s) == "" {
			prev, _ = s["connection"]["uuid"].Value().(string)
		}
	}
	if err := state.EnsurePrivateDir(b.Store.LiveDir); err != nil {
		return err
	}
	if err := state.WriteFileAtomic(b.Store.uplinkPath(p.Network), []byte(prev+"\n"), 0o600); err != nil {
		return err
	}
	var active dbus.ObjectPath
	defer func() {
		if err == nil {
			return
		}
		if active != "" {
			c.Deactivate(ctx, active)
			b.waitGone(ctx, c, active)
		}
		refs, rerr := b.profiles(ctx, c)
		if rerr == nil {
			rerr = b.stopBridged(ctx, c, p.Network, refs)
		}
		if rerr != nil {
			b.Log.Warn("undoing a failed start of a bridged network", "network", p.Network, "error", rerr)
		}
	}()
	port, err := c.AddConnection2(ctx, p.PortSettings(), nm.InMemory)
	if err != nil {
		return err
	}
	active, err = c.Activate(ctx, bridge)
	if err == nil {
		_, err = c.ActivateOn(ctx, port, dev)
	}
	if err == nil {
		err = b.waitActive(ctx, c, active)
	}
	if err != nil {
		return err
	}
	if err := b.quietPort(p.Uplink); err != nil {
		return fmt.Errorf("accept_ra=0 on the uplink %s: %w", p.Uplink, err)
	}
	return nil
}

// stopBridged, once the bridge is down, deletes the port profile and
// activates the uplink's own profile again. A network that is not bridged
// has neither.
func (b *Backend) stopBridged(ctx context.Context, c *nm.Client, name string, refs map[string]profileRef) error {
	if r, ok := refs[PortKey(name)]; ok {
		if err := c.Delete(ctx, r.Path); err != nil && !nm.IsUnknownObject(err) {
			return err
		}
	}
	raw, err := os.ReadFile(b.Store.uplinkPath(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if uuid := strings.TrimSpace(string(raw)); uuid != "" {
		conn, ok, err := c.ConnectionByUUID(ctx, uuid)
		if err != nil {
			return err
		}
		if ok {
			active, err := c.Activate(ctx, conn)
			if err == nil {
				err = b.waitActive(ctx, c, active)
			}
			if err != nil {
				return fmt.Errorf("give the uplink its own profile back: %w", err)
			}
		}
	}
	return os.Remove(b.Store.uplinkPath(name))
}

// repairBridged makes a bridged network whose live XML says it runs whole
// again, for what an interrupted `net start` (kill -9 between its steps)
// or someone else may leave: a bridge profile that is not active is undone
// (the port profile goes, the uplink gets its own profile back, the
// network is reported stopped), a bridge whose uplink is not its port gets
// the port activated, and the uplink port's accept_ra is set to 0 again.
// Every pass does it, unless another vnetguard run holds the network (a
// start or stop under way).
func (b *Backend) repairBridged(ctx context.Context, c *nm.Client, name string) {
	if b.LockDir != "" {
		busy, cancel := context.WithCancel(ctx)
		cancel() // one try, no wait
		unlock, err := state.Lock(busy, b.LockDir, Name+"-"+name)
		if err != nil {
			return
		}
		defer unlock()
	}
	live, err := b.Store.Live(name)
	if err != nil || live == nil {
		return
	}
	p, err := FromDefinition(live, b.Store.Autostart(name))
	if err != nil || p.Uplink == "" {
		return
	}
	refs, err := b.profiles(ctx, c)
	if err != nil {
		return
	}
	log := b.Log.With("network", name, "backend", Name, "uplink", p.Uplink)
	if r := refs[name]; r.Active == nil {
		if err := b.stopBridged(ctx, c, name, refs); err != nil {
			log.Warn("a bridged network's bridge is down and its uplink cannot get its own profile back", "error", err)
			return
		}
		b.Store.RemoveLive(name)
		log.Warn("a bridged network's bridge was down (an interrupted start?): the uplink has its own profile back and the network is stopped")
		return
	}
	dev, ok, err := c.DeviceByIface(ctx, p.Uplink)
	if err != nil || !ok {
		return
	}
	port, hasPort := refs[PortKey(name)]
	onUplink := false
	if hasPort {
		if conn, err := c.DeviceActiveProfile(dev); err == nil {
			onUplink = conn == port.Path
		}
	}
	if !onUplink {
		if !hasPort {
			if port.Path, err = c.AddConnection2(ctx, p.PortSettings(), nm.InMemory); err != nil {
				log.Warn("a bridged network's uplink is not its port, and the port profile cannot be made", "error", err)
				return
			}
		}
		if _, err := c.ActivateOn(ctx, port.Path, dev); err != nil {
			log.Warn("a bridged network's uplink is not its port, and cannot be made one", "error", err)
			return
		}
		log.Warn("a bridged network's uplink was not its port (an interrupted start?): made its port again")
	}
	if err := b.quietPort(p.Uplink); err != nil {
		log.Warn("accept_ra=0 on the uplink port", "error", err)
	}
}

// quietPort sets accept_ra=0 on a bridge port (a port must not
// autoconfigure itself), writing only when it is not 0 already.
func (b *Backend) quietPort(uplink string) error {
	_, err := setSysctl(b.SysctlDir, acceptRA(uplink), "0")
	return err
}

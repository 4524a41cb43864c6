package profiles

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/vnetguard/vnetguard/netdef"
	"github.com/vnetguard/vnetguard/nmhook/backend"
	"github.com/vnetguard/vnetguard/nmhook/hostview"
	"github.com/vnetguard/vnetguard/nmhook/nm"
)

var _ backend.Backend = (*Backend)(nil)

// intent is the record of a renumber in progress: what cannot be observed
// once the addresses changed.
type intent struct {
	Version    int             `json:"version"`
	Network    string          `json:"network"`
	Started    time.Time       `json:"started"`
	OldXML     string          `json:"old_xml"`
	NewXML     string          `json:"new_xml"`
	Bridge     string          `json:"bridge"`
	Ports      []string        `json:"ports"`      // the bridge's ports before
	Checkpoint dbus.ObjectPath `json:"checkpoint"` // NetworkManager's, on the bridge
}

const intentVersion = 1

// CheckpointTimeout is after how long NetworkManager rolls a renumber back
// by itself when nobody confirmed (or recovered) it.
const CheckpointTimeout = 60 * time.Second

func intentKey(network string) string { return Name + ":" + network }

// Renumber moves a running network onto the addresses of newXML without
// taking its bridge down: checkpoint, profile updated in memory, reapply,
// verify, checkpoint destroyed; the guests' ports are bounced so they
// re-lease. On a failure NetworkManager's checkpoint rolls it back.
func (b *Backend) Renumber(ctx context.Context, n backend.Network, newXML []byte) error {
	nd, err := netdef.Parse(newXML)
	if err == nil {
		err = Check(nd)
	}
	if err != nil {
		return fmt.Errorf("renumbered XML of network %s: %w (nothing done)", n.Name, err)
	}
	p, _ := FromDefinition(nd, b.Store.Autostart(n.Name))
	c, err := b.nm()
	if err != nil {
		return err
	}
	var pending intent
	if ok, err := b.Intents.Get(intentKey(n.Name), &pending); ok || err != nil {
		return fmt.Errorf("network %s has an unfinished change pending; it must be recovered first (nothing done)", n.Name)
	}
	br := p.Iface
	dev, ok, err := c.DeviceByIface(ctx, br)
	if err != nil || !ok {
		return fmt.Errorf("network %s: NetworkManager has no device %s (%v) (nothing done)", n.Name, br, err)
	}
	ports, err := hostview.BridgePorts(br)
	if err != nil {
		return fmt.Errorf("list the ports of bridge %s: %w (nothing done)", br, err)
	}
	// The intent is written before the checkpoint exists: a run killed
	// between the two leaves a record that lets the next run find the
	// checkpoint (the one on this bridge alone) and destroy it, rather than
	// a checkpoint nobody knows that NetworkManager would roll back 60 s
	// later, undoing whatever changed on the bridge meanwhile.
	in := &intent{Version: intentVersion, Network: n.Name, Started: time.Now().UTC(),
		OldXML: string(n.Live.Raw), NewXML: string(newXML), Bridge: br, Ports: ports}
	if err := b.Intents.Put(intentKey(n.Name), in); err != nil {
		return fmt.Errorf("%w (nothing done)", err)
	}
	cp, err := c.CheckpointCreate(ctx, []dbus.ObjectPath{dev}, CheckpointTimeout, nm.CheckpointAllowOverlapping)
	if err == nil {
		pauseAt("checkpoint")
		in.Checkpoint = cp
		if err = b.Intents.Put(intentKey(n.Name), in); err != nil {
			c.CheckpointDestroy(ctx, cp)
		}
	}
	if err != nil {
		if derr := b.Intents.Delete(intentKey(n.Name)); derr != nil {
			return fmt.Errorf("network %s: %w; its intent stays for recovery: %v (nothing done)", n.Name, err, derr)
		}
		return fmt.Errorf("network %s: %w (nothing done)", n.Name, err)
	}
	// From here on the change is carried through whatever is left of the
	// caller's time.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	if err := b.apply(ctx, c, n.Name, dev, p); err != nil {
		b.Log.Warn("renumbering failed; rolling back", "network", n.Name, "error", err)
		note, rerr := b.complete(ctx, in)
		return fmt.Errorf("network %s was not renumbered: %w (%s)", n.Name, errors.Join(err, rerr), note)
	}
	note, err := b.complete(ctx, in)
	if err != nil {
		return err
	}
	if note != "running on its new subnets" {
		return fmt.Errorf("network %s was not renumbered: %s", n.Name, note)
	}
	return nil
}

// apply updates the profile in memory (its file keeps the definition) and
// reapplies the new addresses on the bridge, then waits for the kernel to
// show them.
func (b *Backend) apply(ctx context.Context, c *nm.Client, name string, dev dbus.ObjectPath, p Profile) error {
	refs, err := b.profiles(ctx, c)
	if err != nil {
		return err
	}
	r, ok := refs[name]
	if !ok {
		return fmt.Errorf("its profile is gone")
	}
	if err := c.Update2(ctx, r.Path, p.Settings(), nm.InMemory); err != nil {
		return err
	}
	pauseAt("update")
	applied, version, err := c.AppliedConnection(ctx, dev)
	if err != nil {
		return err
	}
	if err := c.Reapply(ctx, dev, WithAddresses(applied, p), version); err != nil {
		return err
	}
	pauseAt("reapply")
	want := append(slices.Clone(p.IPv4), p.IPv6...)
	deadline := time.Now().Add(10 * time.Second)
	for {
		have, err := bridgeSubnets(p.Iface)
		if err == nil && sameSubnets(have, want) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("bridge %s has %v, not %v, 10 s after the reapply", p.Iface, have, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Pending names the networks with a renumber left unfinished.
func (b *Backend) Pending() ([]string, error) { return b.Intents.Pending(Name) }

// Recover finishes or rolls back an unfinished renumber.
func (b *Backend) Recover(ctx context.Context, name string) (string, error) {
	in := &intent{}
	ok, err := b.Intents.Get(intentKey(name), in)
	if err != nil || !ok {
		return "", err
	}
	if in.Version != intentVersion {
		return "", fmt.Errorf("intent for network %s has version %d, this vnetguard knows %d; left in place", name, in.Version, intentVersion)
	}
	return b.complete(ctx, in)
}

// complete carries a renumber through from what the kernel shows on the
// bridge, each step idempotent: on the new subnets it is confirmed (live
// XML, checkpoint destroyed, ports bounced); otherwise it is rolled back
// to the old ones (NetworkManager's checkpoint if it still exists, else
// the profile and the device set back by hand). The record goes once done.
func (b *Backend) complete(ctx context.Context, in *intent) (string, error) {
	key := intentKey(in.Network)
	oldD, err1 := netdef.Parse([]byte(in.OldXML))
	newD, err2 := netdef.Parse([]byte(in.NewXML))
	if err := errors.Join(err1, err2); err != nil {
		return "", fmt.Errorf("intent for network %s is unusable: %w; left in place", in.Network, err)
	}
	c, err := b.nm()
	if err != nil {
		return "", fmt.Errorf("network %s: %w (will retry)", in.Network, err)
	}
	if in.Checkpoint == "" {
		// Killed before the checkpoint was recorded: nothing was changed
		// yet. A checkpoint made meanwhile covers this bridge alone.
		if err := b.dropOrphanCheckpoints(ctx, c, in.Bridge); err != nil {
			return "", fmt.Errorf("network %s: %w (will retry)", in.Network, err)
		}
		return "nothing had changed yet", b.Intents.Delete(key)
	}
	have, err := bridgeSubnets(in.Bridge)
	if errors.As(err, new(netlink.LinkNotFoundError)) {
		// Stopped meanwhile: nothing runs to finish.
		c.CheckpointDestroy(ctx, in.Checkpoint)
		b.Store.RemoveLive(in.Network)
		return "the network stopped meanwhile", b.Intents.Delete(key)
	}
	if err != nil {
		return "", fmt.Errorf("network %s: %w (will retry)", in.Network, err)
	}
	if sameSubnets(have, newD.Network.Subnets()) {
		if err := b.Store.WriteLive(in.Network, []byte(in.NewXML)); err != nil {
			return "", err
		}
		pauseAt("confirm")
		if err := b.syncFirewall(); err != nil {
			return "", fmt.Errorf("network %s: firewall for its new subnets: %w (will retry)", in.Network, err)
		}
		if err := c.CheckpointDestroy(ctx, in.Checkpoint); err != nil && !checkpointGone(err) {
			return "", fmt.Errorf("network %s: %w (will retry)", in.Network, err)
		}
		if err := hostview.Replug(in.Bridge, in.Ports, true); err != nil {
			b.Log.Warn("bouncing the guests' ports", "network", in.Network, "error", err)
		}
		return "running on its new subnets", b.Intents.Delete(key)
	}
	// Back to the old subnets: NetworkManager's checkpoint restores the
	// profile and the device; once it is gone (rolled back by timeout, or
	// destroyed), the profile is set back from the old XML.
	rolled := false
	if err := c.CheckpointRollback(ctx, in.Checkpoint); err == nil {
		rolled = true
	} else if !checkpointGone(err) {
		b.Log.Warn("checkpoint rollback failed; restoring by hand", "network", in.Network, "error", err)
	}
	if !rolled {
		p, err := FromDefinition(oldD, b.Store.Autostart(in.Network))
		if err != nil {
			return "", err
		}
		dev, ok, err := c.DeviceByIface(ctx, in.Bridge)
		if err == nil && ok {
			err = b.apply(ctx, c, in.Network, dev, p)
		}
		if err != nil {
			return "", fmt.Errorf("network %s: restoring its old subnets: %w (will retry)", in.Network, err)
		}
	}
	if err := b.Store.WriteLive(in.Network, []byte(in.OldXML)); err != nil {
		return "", err
	}
	if err := b.syncFirewall(); err != nil {
		return "", fmt.Errorf("network %s: firewall for its old subnets: %w (will retry)", in.Network, err)
	}
	// The ports stay where they are; a rollback may have re-plugged none.
	if err := hostview.Replug(in.Bridge, in.Ports, false); err != nil {
		b.Log.Warn("re-plugging the guests' ports", "network", in.Network, "error", err)
	}
	return "back on its old subnets", b.Intents.Delete(key)
}

// dropOrphanCheckpoints destroys the checkpoints that cover exactly the
// bridge's device: only a renumber of vnetguard's makes such a checkpoint.
func (b *Backend) dropOrphanCheckpoints(ctx context.Context, c *nm.Client, br string) error {
	dev, ok, err := c.DeviceByIface(ctx, br)
	if err != nil || !ok {
		return err
	}
	cps, err := c.Checkpoints()
	if err != nil {
		return err
	}
	for _, cp := range cps {
		devs, err := c.CheckpointDevices(cp)
		if err != nil || len(devs) != 1 || devs[0] != dev {
			continue
		}
		b.Log.Info("destroying a checkpoint an interrupted renumber left", "bridge", br, "checkpoint", cp)
		if err := c.CheckpointDestroy(ctx, cp); err != nil && !checkpointGone(err) {
			return err
		}
	}
	return nil
}

// PauseEnv names a step of a renumber (checkpoint, update, reapply,
// confirm) at which the process stops for a minute: how the lab's fault
// tests kill a renumber at a chosen point. Never set in production.
const PauseEnv = "VNETGUARD_TEST_PAUSE_AT"

func pauseAt(step string) {
	if os.Getenv(PauseEnv) == step {
		time.Sleep(time.Minute)
	}
}

func checkpointGone(err error) bool {
	var de dbus.Error
	return errors.As(err, &de) && (de.Name == "org.freedesktop.NetworkManager.InvalidArguments" || nm.IsUnknownObject(err))
}

// bridgeSubnets reads the bridge's global addresses from the kernel, as
// masked subnets.
func bridgeSubnets(br string) ([]netip.Prefix, error) {
	l, err := netlink.LinkByName(br)
	if err != nil {
		return nil, err
	}
	addrs, err := netlink.AddrList(l, unix.AF_UNSPEC)
	if err != nil {
		return nil, err
	}
	var out []netip.Prefix
	for _, a := range addrs {
		if a.Scope != unix.RT_SCOPE_UNIVERSE {
			continue
		}
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			continue
		}
		bits, _ := a.Mask.Size()
		out = append(out, netip.PrefixFrom(ip.Unmap(), bits).Masked())
	}
	return out, nil
}

func sameSubnets(a, b []netip.Prefix) bool {
	norm := func(ps []netip.Prefix) []netip.Prefix {
		out := make([]netip.Prefix, len(ps))
		for i, p := range ps {
			out[i] = p.Masked()
		}
		slices.SortFunc(out, func(x, y netip.Prefix) int { return x.Addr().Compare(y.Addr()) })
		return slices.Compact(out)
	}
	return slices.Equal(norm(a), norm(b))
}

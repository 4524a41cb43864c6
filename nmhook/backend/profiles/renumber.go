package profiles

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
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
	if nm.Lost(err) {
		// NetworkManager got the call but did not answer (hung, or it
		// died): a checkpoint may exist now or once it runs again, one
		// that would roll the bridge back 60 s later. The intent stays,
		// so that the next run destroys it.
		return fmt.Errorf("network %s: %w; its intent stays for the next run to clear (nothing changed)", n.Name, err)
	}
	if err == nil {
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
	// caller's time (at least carryFloor), even if the caller is
	// cancelled. Past it the intent and the checkpoint stay for the next
	// run: the bridge never goes down in between, so nothing is lost by
	// leaving, and a NetworkManager that stopped answering does not hold
	// this run past its deadline.
	ctx, cancel := carryContext(ctx)
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
	applied, version, err := c.AppliedConnection(ctx, dev)
	if err != nil {
		return err
	}
	if err := c.Reapply(ctx, dev, WithAddresses(applied, p), version); err != nil {
		return err
	}
	want := append(slices.Clone(p.IPv4), p.IPv6...)
	deadline := time.Now().Add(10 * time.Second)
	for i := 1; ; i++ {
		have, err := bridgeSubnets(p.Iface)
		if err == nil && sameSubnets(have, want) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("bridge %s has %v, not %v, 10 s after the reapply", p.Iface, have, want)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("bridge %s has %v, not %v, when time ran out after the reapply", p.Iface, have, want)
		}
		if i%25 == 0 {
			// Every half second: is NetworkManager still there to apply
			// them? One that died will not (one that is only slow to
			// answer is waited for until the deadline).
			pctx, cancel := context.WithTimeout(ctx, time.Second)
			err := c.Ping(pctx)
			cancel()
			if errors.Is(err, nm.ErrUnavailable) {
				return fmt.Errorf("bridge %s has %v, not %v, after the reapply: %w", p.Iface, have, want, err)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Pending names the networks with a renumber left unfinished.
func (b *Backend) Pending() ([]string, error) { return b.Intents.Pending(Name) }

// Recover finishes or rolls back an unfinished renumber.
func (b *Backend) Recover(ctx context.Context, name string) (backend.Recovered, error) {
	in := &intent{}
	ok, err := b.Intents.Get(intentKey(name), in)
	if err != nil || !ok {
		return backend.Recovered{}, err
	}
	if in.Version != intentVersion {
		return backend.Recovered{}, fmt.Errorf("intent for network %s has version %d, this vnetguard knows %d; left in place", name, in.Version, intentVersion)
	}
	note, err := b.complete(ctx, in)
	r := backend.Recovered{Note: note}
	if err != nil {
		return r, err
	}
	// Carried through when the bridge now has the new subnets.
	if newD, perr := netdef.Parse([]byte(in.NewXML)); perr == nil {
		if have, berr := bridgeSubnets(in.Bridge); berr == nil && sameSubnets(have, newD.Network.Subnets()) {
			r.Moves = backend.MovesBetween([]byte(in.OldXML), []byte(in.NewXML))
		}
	}
	return r, nil
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
	// A dnsmasq left by a NetworkManager that died is stopped once a new
	// one runs (until then it still serves the guests); if the new one
	// then does not run its own, it has dropped the network.
	dropped := false
	pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
	nmUp := c.Ping(pctx) == nil
	pcancel()
	if nmUp && killOrphanSharedDnsmasq(in.Bridge, b.Log) {
		dropped = !b.awaitSharedDnsmasq(ctx, c, in)
	}
	have, err := bridgeSubnets(in.Bridge)
	restarted := ""
	if gone := errors.As(err, new(netlink.LinkNotFoundError)); gone || dropped {
		if live, lerr := b.Store.Live(in.Network); gone && live == nil && lerr == nil {
			// Stopped meanwhile (net stop removes the live XML):
			// nothing runs to finish.
			if in.Checkpoint != "" {
				c.CheckpointDestroy(ctx, in.Checkpoint)
			}
			return "the network stopped meanwhile", b.Intents.Delete(key)
		}
		// Still running as far as vnetguard knows: NetworkManager
		// dropped the bridge. It does so when it restarts after dying
		// (its checkpoints die with it): the dnsmasq the dead one ran
		// for the bridge still holds the address, the new one cannot
		// bind it, the profile's activation fails and the bridge is
		// deleted. Started again: on the new subnets if the change had
		// begun (the renumber is finished), else, or if that fails, on
		// the old ones.
		target, targetName := oldD, "old"
		if in.Checkpoint != "" {
			target, targetName = newD, "new"
		}
		err = b.reactivate(ctx, c, in, target, dropped)
		if err != nil && target == newD {
			b.Log.Warn("starting the network again on its new subnets failed; trying its old ones", "network", in.Network, "error", err)
			targetName = "old"
			err = b.reactivate(ctx, c, in, oldD, true)
		}
		if err != nil {
			return "", fmt.Errorf("network %s: NetworkManager dropped its bridge %s; starting it again: %w (will retry)", in.Network, in.Bridge, err)
		}
		b.Log.Warn("NetworkManager had dropped the bridge of a network in the middle of its renumber; started it again",
			"network", in.Network, "bridge", in.Bridge, "subnets", targetName)
		restarted = " (NetworkManager had dropped its bridge; started again)"
		have, err = bridgeSubnets(in.Bridge)
	}
	if err != nil {
		return "", fmt.Errorf("network %s: %w (will retry)", in.Network, err)
	}
	if in.Checkpoint == "" {
		// Killed before the checkpoint was recorded: nothing was changed
		// yet. A checkpoint made meanwhile covers this bridge alone.
		if err := b.dropOrphanCheckpoints(ctx, c, in.Bridge); err != nil {
			return "", fmt.Errorf("network %s: %w (will retry)", in.Network, err)
		}
		if restarted != "" {
			if err := b.syncFirewall(); err != nil {
				return "", fmt.Errorf("network %s: firewall: %w (will retry)", in.Network, err)
			}
			if err := hostview.Replug(in.Bridge, in.Ports, true); err != nil {
				b.Log.Warn("re-plugging the guests' ports", "network", in.Network, "error", err)
			}
		}
		return "nothing had changed yet" + restarted, b.Intents.Delete(key)
	}
	if sameSubnets(have, newD.Network.Subnets()) {
		if err := b.Store.WriteLive(in.Network, []byte(in.NewXML)); err != nil {
			return "", err
		}
		if err := b.syncFirewall(); err != nil {
			return "", fmt.Errorf("network %s: firewall for its new subnets: %w (will retry)", in.Network, err)
		}
		if err := c.CheckpointDestroy(ctx, in.Checkpoint); err != nil && !checkpointGone(err) {
			return "", fmt.Errorf("network %s: %w (will retry)", in.Network, err)
		}
		if err := hostview.Replug(in.Bridge, in.Ports, true); err != nil {
			b.Log.Warn("bouncing the guests' ports", "network", in.Network, "error", err)
		}
		return "running on its new subnets" + restarted, b.Intents.Delete(key)
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
	// Judged once NetworkManager has applied it: a rollback (this one, or
	// one a frozen run sent and NetworkManager took up late) re-activates
	// the bridge after its call returned.
	if err := awaitSubnets(ctx, in.Bridge, oldD.Network.Subnets()); err != nil {
		return "", fmt.Errorf("network %s: restoring its old subnets: %w (will retry)", in.Network, err)
	}
	if err := b.Store.WriteLive(in.Network, []byte(in.OldXML)); err != nil {
		return "", err
	}
	if err := b.syncFirewall(); err != nil {
		return "", fmt.Errorf("network %s: firewall for its old subnets: %w (will retry)", in.Network, err)
	}
	// The ports stay where they are; a rollback may have re-plugged none.
	// A bridge made again has none: they are bounced into it.
	if err := hostview.Replug(in.Bridge, in.Ports, restarted != ""); err != nil {
		b.Log.Warn("re-plugging the guests' ports", "network", in.Network, "error", err)
	}
	return "back on its old subnets" + restarted, b.Intents.Delete(key)
}

// reactivate activates a network's profile again with the addresses of d
// (in memory: its file keeps the definition) once NetworkManager dropped
// its bridge (force: even if NetworkManager still lists it active), and
// waits for the bridge to show them.
func (b *Backend) reactivate(ctx context.Context, c *nm.Client, in *intent, d *netdef.Definition, force bool) error {
	p, err := FromDefinition(d, b.Store.Autostart(in.Network))
	if err != nil {
		return err
	}
	refs, err := b.profiles(ctx, c)
	if err != nil {
		return err
	}
	r, ok := refs[in.Network]
	if !ok {
		return fmt.Errorf("its profile is gone")
	}
	if err := c.Update2(ctx, r.Path, p.Settings(), nm.InMemory); err != nil {
		return err
	}
	if r.Active == nil || force {
		if _, err := c.Activate(ctx, r.Path); err != nil {
			return err
		}
	}
	// Activated as far as the guests need: the bridge has its addresses
	// (NetworkManager starts dnsmasq on them).
	if err := awaitSubnets(ctx, p.Iface, append(slices.Clone(p.IPv4), p.IPv6...)); err != nil {
		return fmt.Errorf("%w after its activation", err)
	}
	b.kickRA()
	return nil
}

// awaitSubnets waits up to 15 s (or ctx's end) until the bridge has exactly
// the subnets want: NetworkManager applies a rollback or an activation
// after its D-Bus call has returned.
func awaitSubnets(ctx context.Context, br string, want []netip.Prefix) error {
	for deadline := time.Now().Add(15 * time.Second); ; {
		have, err := bridgeSubnets(br)
		if err == nil && sameSubnets(have, want) {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("bridge %s has %v, not %v", br, have, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sharedDnsmasqs lists the dnsmasq processes run for the bridge's shared
// mode: those whose command line names its pid file
// (/run/nm-dnsmasq-BRIDGE.pid; the file itself may be gone).
func sharedDnsmasqs(br string) []int {
	arg := []byte("--pid-file=/run/nm-dnsmasq-" + br + ".pid\x00")
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && bytes.Contains(cmdline, []byte("dnsmasq\x00")) && bytes.Contains(cmdline, arg) {
			out = append(out, pid)
		}
	}
	return out
}

// killOrphanSharedDnsmasq stops the dnsmasq a NetworkManager that died
// ran for the bridge's shared mode (NetworkManager.service has
// KillMode=process: it outlives its parent), and tells whether there was
// one. The NetworkManager started after it neither stops it nor can start
// its own on the address it holds: it fails the profile's activation and
// deletes the bridge. A dnsmasq whose parent is a NetworkManager is left
// alone.
func killOrphanSharedDnsmasq(br string, log *slog.Logger) bool {
	killed := false
	for _, pid := range sharedDnsmasqs(br) {
		if parentIsNetworkManager(pid) {
			continue
		}
		log.Warn("stopping the dnsmasq a NetworkManager that died left on the bridge", "bridge", br, "pid", pid)
		unix.Kill(pid, unix.SIGTERM)
		for i := 0; i < 100 && unix.Kill(pid, 0) == nil; i++ {
			time.Sleep(20 * time.Millisecond)
		}
		if unix.Kill(pid, 0) == nil {
			unix.Kill(pid, unix.SIGKILL)
		}
		killed = true
	}
	return killed
}

// awaitSharedDnsmasq waits (up to 5 s) until NetworkManager runs a
// dnsmasq of its own for the network's bridge (true), or has dropped the
// network: its profile is no longer active, or the bridge is gone (false).
func (b *Backend) awaitSharedDnsmasq(ctx context.Context, c *nm.Client, in *intent) bool {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && ctx.Err() == nil; time.Sleep(50 * time.Millisecond) {
		for _, pid := range sharedDnsmasqs(in.Bridge) {
			if parentIsNetworkManager(pid) {
				return true
			}
		}
		if _, err := netlink.LinkByName(in.Bridge); errors.As(err, new(netlink.LinkNotFoundError)) {
			return false
		}
		if refs, err := b.profiles(ctx, c); err == nil && refs[in.Network].Active == nil {
			return false
		}
	}
	return false
}

// parentIsNetworkManager tells whether process pid's parent is a
// NetworkManager (from /proc/PID/stat and the parent's comm).
func parentIsNetworkManager(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) state ppid ...: comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return false
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 2 {
		return false
	}
	comm, err := os.ReadFile("/proc/" + f[1] + "/comm")
	return err == nil && strings.TrimSpace(string(comm)) == "NetworkManager"
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
		devs, err := c.CheckpointDevices(ctx, cp)
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

// carryFloor and carryDefault bound how long a renumber under way is
// carried through: the caller's deadline, but never less than carryFloor
// from now; carryDefault when the caller has none.
const (
	carryFloor   = 5 * time.Second
	carryDefault = 2 * time.Minute
)

// carryContext is the context a renumber under way is carried through on:
// not cancelled with the caller's, ending at the caller's deadline (at
// least carryFloor from now), or after carryDefault.
func carryContext(ctx context.Context) (context.Context, context.CancelFunc) {
	d := carryDefault
	if dl, ok := ctx.Deadline(); ok {
		d = max(time.Until(dl), carryFloor)
	}
	return context.WithTimeout(context.WithoutCancel(ctx), d)
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

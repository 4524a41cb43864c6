// Package profiles is the guard's backend for vnetguard's own virtual
// networks: definitions in libvirt's network XML format
// (/etc/vnetguard/networks/NAME.xml) realised as NetworkManager bridge
// profiles, marked as vnetguard's by a user-data key. A network's profile
// exists from `net define` to `net undefine`; `net start` activates it
// (NetworkManager creates the bridge, runs dnsmasq for shared IPv4 and
// sends router advertisements for shared IPv6), `net stop` deactivates it
// (NetworkManager deletes the bridge). What the profile cannot express is
// added beside it (Firewall).
//
// A renumber is a NetworkManager checkpoint on the bridge, the profile
// updated in memory (its file keeps the defined addresses, as libvirt keeps
// a persistent definition), a reapply that keeps the bridge and its ports,
// a check of the kernel's addresses, and the checkpoint destroyed; an
// intent record written before the first change lets Recover finish it or
// roll it back.
package profiles

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/vnetguard/vnetguard/netdef"
	"github.com/vnetguard/vnetguard/nmhook/backend"
	"github.com/vnetguard/vnetguard/nmhook/hostview"
	"github.com/vnetguard/vnetguard/nmhook/nm"
	"github.com/vnetguard/vnetguard/nmhook/state"
)

// Name is the backend's name in outcomes, logs, locks and intent keys.
const Name = "nm"

// Firewall keeps the rules profiles cannot express for the running
// networks; Sync replaces them all at once with those of nets.
type Firewall interface {
	Sync(nets []*netdef.Definition) error
}

// RA keeps radvd for the running networks that ask for it: Sync starts,
// reconfigures and stops them; Kick makes them re-read their bridges.
type RA interface {
	Sync(nets []*netdef.Definition) error
	Kick(nets []*netdef.Definition)
}

// Syncer brings something vnetguard keeps beside the profiles (dnsmasqs,
// proxy entries) in line with the running networks.
type Syncer interface {
	Sync(nets []*netdef.Definition) error
}

// Backend implements backend.Backend for vnetguard's own networks.
type Backend struct {
	Store    Store
	Intents  state.Intents
	Log      *slog.Logger
	Firewall Firewall // nil: no rules of vnetguard's own
	// RA runs the router advertisement daemons of networks that ask for
	// <radvd/>; nil: none.
	RA RA
	// DHCP runs the dnsmasqs of networks that need one of vnetguard's
	// own (Dnsmasq); nil: none.
	DHCP Syncer
	// Proxy keeps the neighbour proxy entries of proxy-NDP networks
	// (ProxyNDP); nil: none.
	Proxy Syncer
	// LockDir holds the per-network locks every vnetguard run shares
	// (state.Lock); the repair of a bridged network skips one that is
	// locked. "": no locking (tests).
	LockDir string
	// Dial connects to NetworkManager (nm.Dial); ErrUnavailable when it is
	// not running.
	Dial func() (*nm.Client, error)
	// SysctlDir is /proc/sys ("" means that); tests point it elsewhere.
	SysctlDir string
	// NetClassDir is /sys/class/net ("" means that).
	NetClassDir string
	// ActivateTimeout bounds waiting for a profile to activate (30 s).
	ActivateTimeout time.Duration

	mu     sync.Mutex
	client *nm.Client
}

// New makes the backend: definitions in dir, live XML and intents under
// runDir.
func New(dir, runDir string, log *slog.Logger) *Backend {
	if log == nil {
		log = slog.Default()
	}
	return &Backend{
		Store:   Store{Dir: dir, LiveDir: runDir + "/networks"},
		Intents: state.Intents{Dir: runDir + "/intents"},
		LockDir: runDir,
		Log:     log,
		Dial:    nm.Dial,
	}
}

func (b *Backend) Name() string { return Name }

// Close drops the bus connection.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.client == nil {
		return nil
	}
	err := b.client.Close()
	b.client = nil
	return err
}

func (b *Backend) nm() (*nm.Client, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.client != nil {
		return b.client, nil
	}
	c, err := b.Dial()
	if err != nil {
		return nil, err
	}
	b.client = c
	return c, nil
}

// profileRef is a vnetguard profile as NetworkManager has it now.
type profileRef struct {
	Path   dbus.ObjectPath
	Active *nm.ActiveConnection // nil when not active
}

// connect dials NetworkManager (once per backend) and lists vnetguard's
// profiles by network name.
func (b *Backend) connect(ctx context.Context) (*nm.Client, map[string]profileRef, error) {
	c, err := b.nm()
	if err != nil {
		return nil, nil, err
	}
	refs, err := b.profiles(ctx, c)
	if err != nil {
		return nil, nil, err
	}
	return c, refs, nil
}

// profiles maps network names to their profiles.
func (b *Backend) profiles(ctx context.Context, c *nm.Client) (map[string]profileRef, error) {
	paths, err := c.Connections(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]profileRef{}
	for _, p := range paths {
		s, err := c.GetSettings(ctx, p)
		if err != nil {
			if nm.IsUnknownObject(err) {
				continue // deleted meanwhile
			}
			return nil, err
		}
		if name := OwnerOf(s); name != "" {
			out[name] = profileRef{Path: p}
		}
	}
	acts, err := c.ActiveConnections(ctx)
	if err != nil {
		return nil, err
	}
	for _, a := range acts {
		for name, r := range out {
			if r.Path == a.Connection {
				a := a
				r.Active = &a
				out[name] = r
			}
		}
	}
	return out, nil
}

// Networks lists the defined networks. Without NetworkManager they are
// all reported stopped: the guard goes on protecting the others.
func (b *Backend) Networks(ctx context.Context, full bool) ([]backend.Network, error) {
	names, err := b.Store.Names()
	if err != nil {
		return nil, fmt.Errorf("list vnetguard networks in %s: %w", b.Store.Dir, err)
	}
	if len(names) == 0 {
		return nil, nil
	}
	var refs map[string]profileRef
	if c, err := b.nm(); err == nil {
		if refs, err = b.profiles(ctx, c); err != nil {
			return nil, err
		}
		if b.repairBridgedAll(ctx, c, names) {
			if refs, err = b.profiles(ctx, c); err != nil {
				return nil, err
			}
		}
	} else if !errors.Is(err, nm.ErrUnavailable) {
		return nil, err
	}
	out := make([]backend.Network, 0, len(names))
	anyActive := false
	for _, name := range names {
		n := b.network(name, refs[name])
		if n.Active && n.Live != nil {
			b.reassertForwarding(n)
			anyActive = true
		}
		out = append(out, n)
	}
	if anyActive {
		b.superviseDaemons()
	}
	return out, nil
}

// repairBridgedAll repairs the bridged networks that run (repairBridged);
// true when there were any.
func (b *Backend) repairBridgedAll(ctx context.Context, c *nm.Client, names []string) bool {
	any := false
	for _, name := range names {
		if d, err := b.Store.Live(name); err == nil && d != nil && d.Network.ForwardMode() == "bridge" {
			b.repairBridged(ctx, c, name)
			any = true
		}
	}
	return any
}

// superviseDaemons starts again, with a warning, a dnsmasq or radvd of a
// running network that died: every pass of the guard (and net list)
// looks. A daemon that is running on its current configuration is left
// alone.
func (b *Backend) superviseDaemons() {
	nets, err := b.running()
	if err != nil {
		return
	}
	if b.DHCP != nil {
		if err := b.DHCP.Sync(nets); err != nil {
			b.Log.Warn("vnetguard's dnsmasq cannot be kept running", "backend", Name, "error", err)
		}
	}
	if b.RA != nil {
		if err := b.RA.Sync(nets); err != nil {
			b.Log.Warn("vnetguard's radvd cannot be kept running", "backend", Name, "error", err)
		}
	}
	if b.Proxy != nil {
		if err := b.Proxy.Sync(nets); err != nil {
			b.Log.Warn("proxy NDP entries cannot be kept", "backend", Name, "error", err)
		}
	}
	// A physical interface someone enslaved to one of these bridges must
	// not autoconfigure itself (a bridged network's uplink is handled
	// with its start and repair). One link dump serves every bridge.
	_, ports, err := hostview.Links()
	if err != nil {
		return
	}
	for _, d := range nets {
		br := d.Network.BridgeName()
		if br == "" || d.Network.ForwardMode() == "bridge" {
			continue
		}
		changed, err := quietPhysicalPorts(ports[br], b.NetClassDir, b.SysctlDir)
		if len(changed) > 0 {
			b.Log.Info("accept_ra=0 on physical ports of a bridge (a port must not autoconfigure itself)", "network", d.Network.Name, "ports", changed)
		}
		if err != nil {
			b.Log.Warn("a physical port of a bridge may autoconfigure itself", "network", d.Network.Name, "error", err)
		}
	}
}

// reassertForwarding turns forwarding on again, with a warning, for a
// running nat or route network when something turned it off: every pass
// of the guard (and net list) looks.
func (b *Backend) reassertForwarding(n backend.Network) {
	turned, err := ensureForwarding(n.Live, b.SysctlDir)
	if err != nil {
		b.Log.Warn("forwarding is off and cannot be turned on again", "network", n.Name, "backend", Name, "error", err)
		return
	}
	if len(turned) > 0 {
		b.Log.Warn("forwarding was turned off behind vnetguard's back; turned on again", "network", n.Name, "backend", Name, "sysctls", turned)
	}
}

func (b *Backend) network(name string, r profileRef) backend.Network {
	n := backend.Network{Backend: Name, Name: name, Active: r.Active != nil && r.Active.State <= 2}
	n.Defined, n.Err = b.Store.Load(name)
	if n.Err != nil {
		return n
	}
	n.Live = n.Defined
	if n.Active {
		live, err := b.Store.Live(name)
		if err != nil {
			n.Err = fmt.Errorf("live XML of network %s: %w", name, err)
			return n
		}
		if live != nil {
			n.Live = live
		}
	}
	return n
}

// Network reads one network.
func (b *Backend) Network(ctx context.Context, name string) (backend.Network, error) {
	if !b.Store.Exists(name) {
		return backend.Network{}, fmt.Errorf("vnetguard network %s: %w", name, backend.ErrNotFound)
	}
	var r profileRef
	if c, err := b.nm(); err == nil {
		refs, err := b.profiles(ctx, c)
		if err != nil {
			return backend.Network{}, err
		}
		r = refs[name]
	} else if !errors.Is(err, nm.ErrUnavailable) {
		return backend.Network{}, err
	}
	return b.network(name, r), nil
}

// Destroy stops a running network; its definition and profile stay.
func (b *Backend) Destroy(ctx context.Context, n backend.Network) error {
	return b.Stop(ctx, n.Name)
}

// Define stores a definition (replacing one of the same name) and makes or
// updates its profile. A running network keeps running as it is; the new
// definition applies from its next start.
func (b *Backend) Define(ctx context.Context, d *netdef.Definition) error {
	if err := Check(d); err != nil {
		return err
	}
	name := d.Network.Name
	p, _ := FromDefinition(d, b.Store.Autostart(name))
	c, refs, err := b.connect(ctx)
	if err != nil {
		return err
	}
	existed := b.Store.Exists(name)
	if err := b.Store.Write(d); err != nil {
		return fmt.Errorf("write definition of %s: %w", name, err)
	}
	r, ok := refs[name]
	switch {
	case !ok:
		_, err = c.AddConnection2(ctx, p.Settings(), nm.ToDisk|nm.BlockAutoconnect)
	case r.Active == nil:
		err = c.Update2(ctx, r.Path, p.Settings(), nm.ToDisk|nm.BlockAutoconnect)
	}
	if err != nil && !existed {
		b.Store.Remove(name)
	}
	return err
}

// Start activates a network's profile, first brought in line with its
// definition, and waits until NetworkManager reports it activated.
func (b *Backend) Start(ctx context.Context, name string) error {
	d, err := b.Store.Load(name)
	if err != nil {
		return err
	}
	p, _ := FromDefinition(d, b.Store.Autostart(name))
	c, refs, err := b.connect(ctx)
	if err != nil {
		return err
	}
	r, ok := refs[name]
	if ok && r.Active != nil {
		return fmt.Errorf("network %s is already running", name)
	}
	if !ok {
		if r.Path, err = c.AddConnection2(ctx, p.Settings(), nm.ToDisk); err != nil {
			return err
		}
	} else if err := c.Update2(ctx, r.Path, p.Settings(), nm.ToDisk); err != nil {
		return err
	}
	if err := b.Store.WriteLive(name, d.Raw); err != nil {
		return err
	}
	if err := b.syncFirewall(); err != nil {
		b.Store.RemoveLive(name)
		b.syncFirewall()
		return err
	}
	if err := EnsureForwarding(d, b.SysctlDir); err != nil {
		b.Store.RemoveLive(name)
		b.syncFirewall()
		return fmt.Errorf("start network %s: %w", name, err)
	}
	if p.DHCP == "shared" {
		// A NetworkManager that died left its dnsmasq holding the
		// bridge's address: the new one could not start its own, and
		// the activation would fail.
		killOrphanSharedDnsmasq(p.Iface, b.Log)
	}
	var active dbus.ObjectPath
	if p.Uplink != "" {
		err = b.startBridged(ctx, c, p, r.Path)
	} else if active, err = c.Activate(ctx, r.Path); err == nil {
		if err = b.waitActiveOr(ctx, c, active, waitingForPorts(p)); err != nil {
			// Not left activating behind a failed start.
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			if c.Deactivate(cctx, active) == nil {
				b.waitGone(cctx, c, active)
			}
			cancel()
		}
	}
	if err != nil {
		b.Store.RemoveLive(name)
		b.syncFirewall()
		return fmt.Errorf("start network %s: %w", name, err)
	}
	// The bridge exists now: its dnsmasq can bind to it alone, and the
	// radvds re-read it.
	if err := b.syncFirewall(); err != nil {
		return fmt.Errorf("network %s started, but: %w", name, err)
	}
	b.kickRA()
	return nil
}

// waitingForPorts tells, for a network without IPv4, whether its bridge
// is as far as it gets before a port is plugged in: NetworkManager keeps
// activating a bridge until its IPv6 addresses leave the tentative state,
// and the kernel runs duplicate address detection only once the bridge
// has a carrier, that is a port. The addresses are on the bridge, the
// network is usable, and NetworkManager finishes when the first guest
// plugs in. nil for every other network: they activate without ports.
func waitingForPorts(p Profile) func() bool {
	if p.IPv4Method != "disabled" || len(p.IPv6) == 0 {
		return nil
	}
	return func() bool {
		have, err := bridgeSubnets(p.Iface)
		if err != nil {
			return false
		}
		for _, want := range p.IPv6 {
			if !slices.Contains(have, want.Masked()) {
				return false
			}
		}
		return true
	}
}

// waitActive waits until NetworkManager reports the activation done.
func (b *Backend) waitActive(ctx context.Context, c *nm.Client, active dbus.ObjectPath) error {
	return b.waitActiveOr(ctx, c, active, nil)
}

// waitActiveOr is waitActive that also stops waiting, while NetworkManager
// is still activating, once enough() (when not nil) says the network is as
// far as it gets for now.
func (b *Backend) waitActiveOr(ctx context.Context, c *nm.Client, active dbus.ObjectPath, enough func() bool) error {
	timeout := b.ActivateTimeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	deadline := time.Now().Add(timeout)
	for {
		acts, err := c.ActiveConnections(ctx)
		if err != nil {
			return err
		}
		found := false
		for _, a := range acts {
			if a.Path == active {
				found = true
				if a.State == 2 || a.State == 1 && enough != nil && enough() {
					return nil
				}
			}
		}
		if !found {
			return errors.New("NetworkManager gave up activating it (see its log)")
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not activated within %v", timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Stop deactivates a running network (NetworkManager deletes its bridge)
// and removes what vnetguard added beside the profile.
func (b *Backend) Stop(ctx context.Context, name string) error {
	c, refs, err := b.connect(ctx)
	if err != nil {
		return err
	}
	if r, ok := refs[name]; ok && r.Active != nil {
		if err := c.Deactivate(ctx, r.Active.Path); err != nil {
			return err
		}
		if err := b.waitGone(ctx, c, r.Active.Path); err != nil {
			return fmt.Errorf("stop network %s: %w", name, err)
		}
	}
	if err := b.stopBridged(ctx, c, name, refs); err != nil {
		return fmt.Errorf("stop network %s: %w", name, err)
	}
	if err := b.Store.RemoveLive(name); err != nil {
		return err
	}
	return b.syncFirewall()
}

func (b *Backend) waitGone(ctx context.Context, c *nm.Client, active dbus.ObjectPath) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		acts, err := c.ActiveConnections(ctx)
		if err != nil {
			return err
		}
		found := false
		for _, a := range acts {
			found = found || a.Path == active
		}
		if !found {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("still active after 30 s")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Undefine stops a network, deletes its profile and its definition.
func (b *Backend) Undefine(ctx context.Context, name string) error {
	if !b.Store.Exists(name) {
		return fmt.Errorf("vnetguard network %s: %w", name, backend.ErrNotFound)
	}
	if err := b.Stop(ctx, name); err != nil {
		return err
	}
	c, refs, err := b.connect(ctx)
	if err != nil {
		return err
	}
	for _, key := range []string{name, PortKey(name)} {
		if r, ok := refs[key]; ok {
			if err := c.Delete(ctx, r.Path); err != nil {
				return err
			}
		}
	}
	return b.Store.Remove(name)
}

// SetAutostart makes the network start (or not) with NetworkManager: the
// profile's autoconnect.
func (b *Backend) SetAutostart(ctx context.Context, name string, on bool) error {
	if _, err := b.Store.Load(name); err != nil {
		return err
	}
	if err := b.Store.SetAutostart(name, on); err != nil {
		return err
	}
	c, refs, err := b.connect(ctx)
	if err != nil {
		return err
	}
	r, ok := refs[name]
	if !ok {
		return nil // made at the next define or start
	}
	s, err := c.GetSettings(ctx, r.Path)
	if err != nil {
		return err
	}
	s["connection"]["autoconnect"] = dbus.MakeVariant(on)
	dropDeprecated(s)
	// Like virsh net-autostart, this does not start the network now:
	// NetworkManager would activate a profile that turns autoconnect on.
	return c.Update2(ctx, r.Path, s, nm.ToDisk|nm.NoReapply|nm.BlockAutoconnect)
}

// dropDeprecated removes the old address forms GetSettings returns beside
// address-data: sent back, NetworkManager would prefer them.
func dropDeprecated(s nm.Settings) {
	for _, fam := range []string{"ipv4", "ipv6"} {
		delete(s[fam], "addresses")
		delete(s[fam], "routes")
	}
}

// Running lists the live definitions of the running networks (those with
// live XML), for the firewall.
func (b *Backend) running() ([]*netdef.Definition, error) {
	names, err := b.Store.Names()
	if err != nil {
		return nil, err
	}
	var out []*netdef.Definition
	for _, n := range names {
		d, err := b.Store.Live(n)
		if err != nil {
			return nil, err
		}
		if d != nil {
			out = append(out, d)
		}
	}
	return out, nil
}

// syncFirewall brings what vnetguard adds beside the profiles in line with
// the running networks: the firewall, then the dnsmasqs and radvds.
func (b *Backend) syncFirewall() error {
	if b.Firewall == nil && b.RA == nil && b.DHCP == nil && b.Proxy == nil {
		return nil
	}
	nets, err := b.running()
	if err != nil {
		return err
	}
	if b.Firewall != nil {
		if err := b.Firewall.Sync(nets); err != nil {
			return err
		}
	}
	if b.DHCP != nil {
		if err := b.DHCP.Sync(nets); err != nil {
			return err
		}
	}
	if b.Proxy != nil {
		if err := b.Proxy.Sync(nets); err != nil {
			return err
		}
	}
	if b.RA != nil {
		return b.RA.Sync(nets)
	}
	return nil
}

// kickRA tells the radvds that a bridge appeared or changed.
func (b *Backend) kickRA() {
	if b.RA == nil {
		return
	}
	if nets, err := b.running(); err == nil {
		b.RA.Kick(nets)
	}
}

// Info is what `net list` shows of a network.
type Info struct {
	Name      string         `json:"name"`
	Active    bool           `json:"active"`
	Autostart bool           `json:"autostart"`
	Bridge    string         `json:"bridge,omitempty"`
	Mode      string         `json:"mode"`
	Subnets   []netip.Prefix `json:"subnets,omitempty"`
	Profile   string         `json:"profile,omitempty"` // its NetworkManager profile's UUID
	DHCP      string         `json:"dhcp,omitempty"`    // shared (NetworkManager's dnsmasq), dnsmasq (vnetguard's), upstream (bridged) or none
	RA        string         `json:"ra,omitempty"`      // networkmanager, radvd, dnsmasq, or none
	Notes     []string       `json:"notes,omitempty"`
	Error     string         `json:"error,omitempty"`
}

// List describes every defined network.
func (b *Backend) List(ctx context.Context) ([]Info, error) {
	nets, err := b.Networks(ctx, true)
	if err != nil {
		return nil, err
	}
	out := make([]Info, 0, len(nets))
	for _, n := range nets {
		i := Info{Name: n.Name, Active: n.Active, Autostart: b.Store.Autostart(n.Name)}
		if n.Err != nil {
			i.Error = n.Err.Error()
			out = append(out, i)
			continue
		}
		p, _ := FromDefinition(n.Live, i.Autostart)
		i.Bridge, i.Subnets, i.Profile, i.DHCP, i.Notes, i.RA = p.Iface, n.Live.Network.Subnets(), p.UUID, p.DHCP, p.Notes, p.RA
		i.Mode = n.Live.Network.ForwardMode()
		if i.Mode == "" {
			i.Mode = "isolated"
		}
		out = append(out, i)
	}
	return out, nil
}

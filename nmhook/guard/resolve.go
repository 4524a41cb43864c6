// Package guard joins the pure conflict engine to the real world: it reads
// libvirt's networks and the host, decides per network policy, and acts
// (renumber, destroy, warn). Every action re-reads the live state under a
// per-network lock just before acting, and does nothing on a doubt.
package guard

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync/atomic"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/vnetguard/vnetguard/conflict"
	"github.com/vnetguard/vnetguard/nmhook/state"
	"github.com/vnetguard/vnetguard/netdef"
	"github.com/vnetguard/vnetguard/netdef/libvirtdbus"
)

// Libvirt is the part of libvirt-dbus the resolver uses.
type Libvirt interface {
	List(ctx context.Context, withDefined bool) ([]libvirtdbus.Network, error)
	Lookup(ctx context.Context, name string) (libvirtdbus.Network, error)
	Destroy(ctx context.Context, n libvirtdbus.Network) error
	CreateXML(ctx context.Context, xml string) (dbus.ObjectPath, error)
}

// Host reads the host's addresses and routes and handles bridge ports.
type Host interface {
	Read() (conflict.HostView, error)
	Ports() (map[string][]string, error) // bridge -> its ports
	Replug(bridge string, ports []string) error
}

// Config holds the settings of a resolver.
type Config struct {
	DefaultPolicy netdef.OnConflict // for networks whose XML names none
	Direction     conflict.Direction
	Pools         []conflict.Pool // IPv4 pools; nil means the defaults
	Reserved      []netip.Prefix
	ULA           conflict.ULAGlobalID
	Usable        map[conflict.Family]bool
	CacheDir      string // remembered subnets and last actions
	LockDir       string // per-network locks shared by all vnetguard runs
	LockWait      time.Duration
	Ignore        []string // network names never touched
	DryRun        bool     // decide and report, act on nothing
	// DampingWindow: an automatic run moves a network at most once per
	// window, and never back onto a subnet it left within the window, so
	// a flapping address or route cannot make it ping-pong. Zero for runs a
	// user asked for.
	DampingWindow time.Duration
	Log           *slog.Logger
}

// Resolver detects and acts over libvirt's networks.
type Resolver struct {
	Libvirt Libvirt
	Host    Host
	Config  Config

	own atomic.Pointer[map[string]bool] // bridges and ports seen in the last read
}

// Own tells whether an interface was, at the last read, a virtual
// network's bridge or one of its ports: the listener ignores events there,
// which are libvirt's or vnetguard's own doing.
func (r *Resolver) Own(ifname string) bool {
	m := r.own.Load()
	return m != nil && (*m)[ifname]
}

// Outcome is what happened to one network in a pass.
type Outcome struct {
	Network   string              `json:"network"`
	Action    string              `json:"action"` // renumber, destroy, warn, none
	Policy    netdef.OnConflict   `json:"policy"`
	Moves     []conflict.Move     `json:"moves,omitempty"`
	Conflicts []conflict.Conflict `json:"conflicts,omitempty"`
	DryRun    bool                `json:"dry_run,omitempty"`
	Note      string              `json:"note,omitempty"`
	RetryIn   time.Duration       `json:"retry_in,omitempty"` // held back by damping: try again after this
	Error     string              `json:"error,omitempty"`
}

// snapshot is one consistent read of libvirt and the host.
type snapshot struct {
	networks []libvirtdbus.Network
	parsed   map[string]*parsedNetwork
	view     conflict.HostView
	index    *conflict.Index
	ports    map[string][]string
	full     bool // persistent definitions were read too
}

type parsedNetwork struct {
	live    *netdef.Definition
	defined *netdef.Definition // nil for a transient network
	err     error              // the XML could not be read: never act
}

func (r *Resolver) log() *slog.Logger {
	if r.Config.Log != nil {
		return r.Config.Log
	}
	return slog.Default()
}

// read takes a snapshot. A light read (full=false) fetches only what
// detection needs, the live XML: that is every pass's cost. Acting and
// status read the persistent definitions too.
func (r *Resolver) read(ctx context.Context, full bool) (*snapshot, error) {
	nets, err := r.Libvirt.List(ctx, full)
	if err != nil {
		return nil, err
	}
	view, err := r.Host.Read()
	if err != nil {
		return nil, fmt.Errorf("read host addresses and routes: %w", err)
	}
	ports, err := r.Host.Ports()
	if err != nil {
		return nil, fmt.Errorf("read bridge ports: %w", err)
	}
	s := &snapshot{networks: nets, parsed: map[string]*parsedNetwork{}, view: view,
		index: conflict.NewIndex(view), ports: ports, full: full}
	own := map[string]bool{}
	for _, n := range nets {
		p := parseNetwork(n)
		s.parsed[n.Name] = p
		if p.err != nil || p.live.Network.BridgeName() == "" {
			continue
		}
		br := p.live.Network.BridgeName()
		own[br] = true
		if n.Active {
			for _, port := range ports[br] {
				own[port] = true
			}
		}
	}
	r.own.Store(&own)
	return s, nil
}

func parseNetwork(n libvirtdbus.Network) *parsedNetwork {
	p := &parsedNetwork{}
	p.live, p.err = parseValid(n.Name, "live", n.LiveXML)
	if p.err == nil && n.DefinedXML != "" {
		p.defined, p.err = parseValid(n.Name, "defined", n.DefinedXML)
	}
	return p
}

func parseValid(name, which, xml string) (*netdef.Definition, error) {
	d, err := netdef.Parse([]byte(xml))
	if err != nil {
		return nil, fmt.Errorf("%s XML of network %s: %w", which, name, err)
	}
	d.Path = "libvirt:" + name
	if probs := d.Validate(); len(probs) > 0 {
		return nil, fmt.Errorf("%s XML of network %s is invalid: %w", which, name, probs[0])
	}
	return d, nil
}

// policyOf reads the policy from the definition (libvirt keeps metadata),
// else the live XML, else the configured default.
func (r *Resolver) policyOf(p *parsedNetwork) netdef.OnConflict {
	for _, d := range []*netdef.Definition{p.defined, p.live} {
		if d == nil {
			continue
		}
		if pol, ok := d.Policy(); ok {
			return pol
		}
	}
	if r.Config.DefaultPolicy != "" {
		return r.Config.DefaultPolicy
	}
	return netdef.Destroy
}

// conflictsOf checks an active network's live subnets against the host,
// leaving out its own bridge and ports; an inactive one's defined subnets.
func (r *Resolver) conflictsOf(s *snapshot, n libvirtdbus.Network) ([]conflict.Conflict, error) {
	p := s.parsed[n.Name]
	if p.err != nil {
		return nil, p.err
	}
	en := conflict.Network{Name: n.Name, Bridge: p.live.Network.BridgeName(), Subnets: p.live.Network.Subnets()}
	if n.Active && en.Bridge != "" {
		en.Ports = s.ports[en.Bridge]
	}
	return s.index.Check(en), nil
}

func (r *Resolver) ignored(name string) bool { return slices.Contains(r.Config.Ignore, name) }

// Pass runs one round of detect and act over every active libvirt network.
// Networks are handled one at a time, each on a fresh read, so a network
// moved earlier in the pass is seen by the next.
func (r *Resolver) Pass(ctx context.Context) ([]Outcome, error) {
	s, err := r.read(ctx, false)
	if err != nil {
		return nil, err
	}
	var outcomes []Outcome
	for _, n := range s.networks {
		if !n.Active || r.ignored(n.Name) {
			continue
		}
		found, err := r.conflictsOf(s, n)
		if err != nil {
			outcomes = append(outcomes, Outcome{Network: n.Name, Action: "none", Error: err.Error()})
			continue
		}
		if len(found) == 0 {
			continue
		}
		outcomes = append(outcomes, r.act(ctx, n.Name, nil))
	}
	return outcomes, nil
}

// Renumber moves a live network now, to the given subnets (by family) or,
// where none is given for a clashing or requested family, automatically.
func (r *Resolver) Renumber(ctx context.Context, name string, to []netip.Prefix) Outcome {
	return r.act(ctx, name, to)
}

// act handles one network under its lock on a fresh read. explicit != nil
// means a user asked to renumber to those subnets, whatever the policy.
func (r *Resolver) act(ctx context.Context, name string, explicit []netip.Prefix) Outcome {
	out := Outcome{Network: name, Action: "none", DryRun: r.Config.DryRun}
	wait := r.Config.LockWait
	if wait == 0 {
		wait = 30 * time.Second
	}
	lctx, cancel := context.WithTimeout(ctx, wait)
	unlock, err := lockNetwork(lctx, r.Config.LockDir, name)
	cancel()
	if err != nil {
		out.Error = err.Error()
		return out
	}
	defer unlock()

	s, err := r.read(ctx, true)
	if err != nil {
		out.Error = err.Error()
		return out
	}
	i := slices.IndexFunc(s.networks, func(n libvirtdbus.Network) bool { return n.Name == name })
	if i < 0 {
		out.Error = fmt.Sprintf("no libvirt network named %q", name)
		return out
	}
	n := s.networks[i]
	p := s.parsed[name]
	if p.err != nil {
		out.Error = p.err.Error() + " (nothing done)"
		return out
	}
	if !n.Active {
		out.Note = "network is not running; its definition is left as it is"
		if explicit != nil {
			out.Error = "cannot renumber network " + name + ": it is not running"
		}
		return out
	}
	found, err := r.conflictsOf(s, n)
	if err != nil {
		out.Error = err.Error()
		return out
	}
	out.Conflicts = found
	out.Policy = r.policyOf(p)
	if explicit == nil && len(found) == 0 {
		out.Note = "no conflict any more (resolved meanwhile)"
		return out
	}
	policy := out.Policy
	if explicit != nil {
		policy = netdef.Renumber
	}
	cause := causeOf(found)
	switch policy {
	case netdef.Warn:
		out.Action = "warn"
		// Warn once per cause: a daemon re-checks on every event, and the
		// same clash need not fill the journal.
		if last := r.lastAction(name); last.Action == "warn" && last.Cause == cause {
			return out
		}
		r.log().Warn("virtual network clashes with the host; policy is warn, nothing done",
			"network", name, "cause", cause)
		r.record(name, state.Action{Action: "warn", Cause: cause})
	case netdef.Destroy:
		out.Action = "destroy"
		if r.Config.DryRun {
			return out
		}
		r.log().Info("acting", "network", name, "policy", string(policy), "cause", cause)
		if err := r.Libvirt.Destroy(ctx, n); err != nil {
			out.Error = err.Error()
			return out
		}
		r.log().Warn("destroyed virtual network clashing with the host", "network", name, "cause", cause)
		r.record(name, state.Action{Action: "destroy", Cause: cause})
	case netdef.Renumber:
		if wait := r.damped(name); explicit == nil && wait > 0 {
			out.Note = fmt.Sprintf("renumbered %v ago; held back for %v until the damping window ends",
				(r.Config.DampingWindow - wait).Round(time.Millisecond), wait.Round(time.Millisecond))
			out.RetryIn = wait
			return out
		}
		out.Action = "renumber"
		moves, err := r.plan(s, n, p, found, explicit)
		if err != nil {
			out.Error = err.Error()
			return out
		}
		out.Moves = moves
		if len(moves) == 0 {
			out.Note = "nothing to move"
			return out
		}
		if r.Config.DryRun {
			return out
		}
		r.log().Info("acting", "network", name, "policy", string(policy), "cause", cause)
		if err := r.renumber(ctx, n, p, moves, cause); err != nil {
			out.Error = err.Error()
		}
	default:
		out.Error = fmt.Sprintf("unknown policy %q (nothing done)", policy)
	}
	return out
}

func causeOf(found []conflict.Conflict) string {
	if len(found) == 0 {
		return "asked by the user"
	}
	return found[0].Reason
}

// lastAction is the last action recorded for a network.
func (r *Resolver) lastAction(name string) state.Action {
	if r.Config.CacheDir == "" {
		return state.Action{}
	}
	mem, err := state.LoadMemory(r.Config.CacheDir)
	if err != nil || mem.Networks[name] == nil || mem.Networks[name].LastAction == nil {
		return state.Action{}
	}
	return *mem.Networks[name].LastAction
}

func (r *Resolver) record(name string, a state.Action) {
	if r.Config.DryRun || r.Config.CacheDir == "" {
		return
	}
	a.Time = time.Now().UTC()
	mem, err := state.LoadMemory(r.Config.CacheDir)
	if err != nil {
		r.log().Warn("remembered state unreadable, starting afresh", "error", err)
	}
	mem.Record(name, a)
	if err := mem.Save(r.Config.CacheDir); err != nil {
		r.log().Warn("cannot save remembered state", "error", err)
	}
}

// renumber restarts the network on the new subnets from its edited live
// XML (same name and UUID; the persistent definition is not touched), then
// re-plugs the ports the bridge had.
func (r *Resolver) renumber(ctx context.Context, n libvirtdbus.Network, p *parsedNetwork, moves []conflict.Move, cause string) error {
	nm := make([]netdef.Move, len(moves))
	for i, m := range moves {
		nm[i] = netdef.Move{From: m.From, To: m.To}
	}
	newXML, notes, err := p.live.Renumber(nm)
	if err != nil {
		return fmt.Errorf("edit XML of network %s: %w (nothing done)", n.Name, err)
	}
	if _, err := parseValid(n.Name, "renumbered", string(newXML)); err != nil {
		return fmt.Errorf("%w (nothing done)", err)
	}
	bridge := p.live.Network.BridgeName()
	allPorts, err := r.Host.Ports()
	if err != nil {
		return fmt.Errorf("list ports of %s: %w (nothing done)", bridge, err)
	}
	ports := allPorts[bridge]
	if err := r.Libvirt.Destroy(ctx, n); err != nil {
		return err
	}
	if _, err := r.Libvirt.CreateXML(ctx, string(newXML)); err != nil {
		// Put the network back as it was rather than leave it down.
		if _, rerr := r.Libvirt.CreateXML(ctx, n.LiveXML); rerr != nil {
			return fmt.Errorf("%w; restoring the old network failed too: %v", err, rerr)
		}
		if rerr := r.Host.Replug(bridge, ports); rerr != nil {
			r.log().Warn("re-plugging ports after restore", "network", n.Name, "error", rerr)
		}
		return fmt.Errorf("%w (old network restored)", err)
	}
	newDef, _ := netdef.Parse(newXML)
	if err := r.Host.Replug(newDef.Network.BridgeName(), ports); err != nil {
		r.log().Warn("re-plugging guest ports", "network", n.Name, "error", err)
	}
	desc := make([]string, len(moves))
	for i, m := range moves {
		desc[i] = m.From.String() + " -> " + m.To.String()
	}
	r.log().Warn("renumbered virtual network clashing with the host", "network", n.Name,
		"old_subnet", moves[0].From.String(), "new_subnet", moves[0].To.String(), "moves", desc, "cause", cause, "notes", notes)
	if r.Config.CacheDir != "" {
		mem, err := state.LoadMemory(r.Config.CacheDir)
		if err != nil {
			r.log().Warn("remembered state unreadable, starting afresh", "error", err)
		}
		for _, m := range moves {
			mem.Remember(n.Name, definedSubnetFor(p, m.From), m.To)
		}
		left := make([]netip.Prefix, len(moves))
		for i, m := range moves {
			left[i] = m.From
		}
		mem.Record(n.Name, state.Action{Time: time.Now().UTC(), Action: "renumber", Cause: cause, Moves: desc, Left: left})
		if err := mem.Save(r.Config.CacheDir); err != nil {
			r.log().Warn("cannot save remembered state", "error", err)
		}
	}
	return nil
}

// definedSubnetFor maps a live subnet to the persistent definition's subnet
// in the same position (n-th of its family): memory is keyed by what the
// user defined, which stays put while the live network moves around.
func definedSubnetFor(p *parsedNetwork, live netip.Prefix) netip.Prefix {
	if p.defined == nil {
		return live
	}
	nth := 0
	for _, s := range p.live.Network.Subnets() {
		if s == live {
			break
		}
		if s.Addr().Is4() == live.Addr().Is4() {
			nth++
		}
	}
	for _, s := range p.defined.Network.Subnets() {
		if s.Addr().Is4() != live.Addr().Is4() {
			continue
		}
		if nth == 0 {
			return s
		}
		nth--
	}
	return live
}

// damped returns how long a network must still wait before an automatic
// renumber: zero unless it was renumbered within the damping window.
func (r *Resolver) damped(network string) time.Duration {
	if r.Config.DampingWindow <= 0 {
		return 0
	}
	a := r.lastAction(network)
	since := time.Since(a.Time)
	if a.Action != "renumber" || since < 0 || since >= r.Config.DampingWindow {
		return 0
	}
	return r.Config.DampingWindow - since
}

// recentlyLeft: within the damping window a network never goes back to
// the subnets it just left (no ping-pong between two subnets).
func (r *Resolver) recentlyLeft(network string) []netip.Prefix {
	if r.damped(network) == 0 {
		return nil
	}
	return r.lastAction(network).Left
}

// plan gathers a PlanInput from a fresh snapshot.
func (r *Resolver) plan(s *snapshot, n libvirtdbus.Network, p *parsedNetwork, found []conflict.Conflict, explicit []netip.Prefix) ([]conflict.Move, error) {
	var others []netip.Prefix
	for _, o := range s.networks {
		if o.Name == n.Name {
			continue
		}
		if op := s.parsed[o.Name]; op.err == nil {
			others = append(others, op.live.Network.Subnets()...)
			if op.defined != nil {
				others = append(others, op.defined.Network.Subnets()...)
			}
		}
	}
	var mem *state.Memory
	if r.Config.CacheDir != "" {
		var err error
		if mem, err = state.LoadMemory(r.Config.CacheDir); err != nil {
			r.log().Warn("remembered subnets unreadable; choosing afresh", "error", err)
		}
	}
	clashing := subnetsOf(found)
	if explicit != nil && len(explicit) == 0 && len(clashing) == 0 {
		// A user asked to move a network that clashes with nothing and
		// named no target: move all of its subnets.
		clashing = p.live.Network.Subnets()
	}
	moves, err := Plan(PlanInput{
		Network:  n.Name,
		Own:      p.live.Network.Subnets(),
		Clashing: clashing,
		Targets:  explicit,
		Others:   others,
		Remembered: func(from netip.Prefix) []netip.Prefix {
			return mem.Remembered(n.Name, definedSubnetFor(p, from))
		},
		Host:      s.index,
		Reserved:  append(slices.Clone(r.Config.Reserved), r.recentlyLeft(n.Name)...),
		Pools:     r.Config.Pools,
		Direction: r.Config.Direction,
		ULA:       r.Config.ULA,
		Usable:    r.Config.Usable,
	})
	if err != nil {
		return nil, fmt.Errorf("%w (nothing done)", err)
	}
	return moves, nil
}

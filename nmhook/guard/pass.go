package guard

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/vnetguard/vnetguard/conflict"
	"github.com/vnetguard/vnetguard/conflict/decide"
	"github.com/vnetguard/vnetguard/netdef"
	"github.com/vnetguard/vnetguard/nmhook/state"
)

// Outcome is what happened to one network in a run.
type Outcome struct {
	Network   string              `json:"network"`
	Backend   string              `json:"backend"`
	Action    string              `json:"action"` // renumber, destroy, warn, hold, recover, none
	Policy    netdef.OnConflict   `json:"policy,omitempty"`
	Moves     []conflict.Move     `json:"moves,omitempty"`
	Conflicts []conflict.Conflict `json:"conflicts,omitempty"`
	DryRun    bool                `json:"dry_run,omitempty"`
	Note      string              `json:"note,omitempty"`
	RetryIn   time.Duration       `json:"retry_in,omitempty"` // held back by damping: try again after this
	Error     string              `json:"error,omitempty"`
	// Deferred: an unfinished change was left to the run holding the
	// network's lock; it is still pending.
	Deferred bool `json:"deferred,omitempty"`
	// Repeat: a warning already given for the same cause (not logged or
	// announced again).
	Repeat bool `json:"repeat,omitempty"`
}

// snapshot is one consistent read of the backends and the host.
type snapshot struct {
	networks []Network
	index    *conflict.Index
	ports    map[string][]string
}

// read lists the networks of every backend (with their persistent
// definitions when full) and reads the host. A backend that cannot be
// read fails the read: acting on a partial picture could move a network
// onto another's subnet.
func (g *Guard) read(ctx context.Context, full bool) (*snapshot, error) {
	s := &snapshot{}
	for _, b := range g.Backends {
		nets, err := b.Networks(ctx, full)
		if err != nil {
			return nil, err
		}
		s.networks = append(s.networks, nets...)
	}
	// A check needs only routes over the running networks' subnets: any
	// other cannot clash, and a full internet table is not held. Acting
	// (full) reads everything: a new subnet must be free of every route.
	var keep func(netip.Prefix) bool
	if !full {
		keep = overlapsAny(s.networks)
	}
	view, ports, err := g.Host.Read(keep)
	if err != nil {
		return nil, fmt.Errorf("read host addresses, routes and bridge ports: %w", err)
	}
	s.ports = ports
	s.index = conflict.NewIndex(view)
	own := map[string]bool{}
	for _, n := range s.networks {
		if n.Err != nil || n.Live == nil {
			continue
		}
		if br := n.Live.Network.BridgeName(); br != "" {
			own[br] = true
			if n.Active {
				for _, p := range s.ports[br] {
					own[p] = true
				}
			}
		}
	}
	g.own.Store(&own)
	g.watched.Store(watchedSubnets(s))
	return s, nil
}

// watchedSubnet is a running network's subnet with the network as the
// engine sees it, which says what may carry it without a clash (its
// bridge, the bridge's ports, an uplink it shares a subnet with).
type watchedSubnet struct {
	prefix netip.Prefix
	net    *conflict.Network
}

func watchedSubnets(s *snapshot) *[]watchedSubnet {
	var out []watchedSubnet
	for _, n := range s.networks {
		if n.Err != nil || n.Live == nil || !n.Active {
			continue
		}
		en := s.engineNetwork(n)
		for _, p := range en.Subnets {
			out = append(out, watchedSubnet{prefix: p.Masked(), net: &en})
		}
	}
	return &out
}

// Threatens tells, from the last read and without any I/O, whether an
// address or route p on interface ifname ("" if unknown) overlaps a running
// virtual network's subnet elsewhere than on that network's own bridge or
// ports: the listener then runs a pass at once instead of after the
// debounce. A default route (/0) threatens nothing: the engine ignores it.
func (g *Guard) Threatens(p netip.Prefix, ifname string) bool {
	w := g.watched.Load()
	if w == nil || !p.IsValid() || p.Bits() == 0 {
		return false
	}
	p = p.Masked()
	for _, s := range *w {
		if s.prefix.Overlaps(p) && (ifname == "" || !s.net.Owns(ifname, p)) {
			return true
		}
	}
	return false
}

// overlapsAny accepts a prefix that overlaps a subnet of a running network
// (networks that could not be read have none to check).
func overlapsAny(nets []Network) func(netip.Prefix) bool {
	var subnets []netip.Prefix
	for _, n := range nets {
		if n.Err == nil && n.Live != nil && n.Active {
			for _, p := range n.Live.Network.Subnets() {
				subnets = append(subnets, p.Masked())
			}
		}
	}
	return func(p netip.Prefix) bool {
		for _, s := range subnets {
			if s.Overlaps(p) {
				return true
			}
		}
		return false
	}
}

func (s *snapshot) find(backend, name string) (Network, bool) {
	i := slices.IndexFunc(s.networks, func(n Network) bool { return n.Backend == backend && n.Name == name })
	if i < 0 {
		return Network{}, false
	}
	return s.networks[i], true
}

// conflictsOf checks a network's live subnets against the host, leaving
// out its own bridge and, when it runs, the bridge's ports.
func (s *snapshot) conflictsOf(n Network) []conflict.Conflict {
	return s.index.Check(s.engineNetwork(n))
}

// engineNetwork is the engine's view of a network as it runs: its live
// subnets, its bridge, the bridge's ports when it runs, and the subnets it
// shares with its uplink (proxy NDP).
func (s *snapshot) engineNetwork(n Network) conflict.Network {
	en := conflict.Network{Name: n.Name, Bridge: n.Live.Network.BridgeName(), Subnets: n.Live.Network.Subnets()}
	if n.Active && en.Bridge != "" {
		en.Ports = s.ports[en.Bridge]
	}
	en.Shared = SharedOf(n.Live)
	return en
}

// SharedOf lists the subnets a network shares with its uplink on purpose
// (netdef's ProxyNDP), for the engine.
func SharedOf(d *netdef.Definition) []conflict.Shared {
	uplink, shared := d.Network.ProxyNDP()
	out := make([]conflict.Shared, len(shared))
	for i, p := range shared {
		out[i] = conflict.Shared{Iface: uplink, Subnet: p}
	}
	return out
}

// others lists the subnets of every network but n, live and defined.
func (s *snapshot) others(n Network) []netip.Prefix {
	var out []netip.Prefix
	for _, o := range s.networks {
		if (o.Backend == n.Backend && o.Name == n.Name) || o.Err != nil {
			continue
		}
		out = append(out, o.Live.Network.Subnets()...)
		if o.Defined != nil {
			out = append(out, o.Defined.Network.Subnets()...)
		}
	}
	return out
}

// policyOf reads the policy from the definition (libvirt keeps metadata),
// else the live XML, else the configured default.
func policyOf(n Network, def netdef.OnConflict) netdef.OnConflict {
	for _, d := range []*netdef.Definition{n.Defined, n.Live} {
		if d == nil {
			continue
		}
		if pol, ok := d.Policy(); ok {
			return pol
		}
	}
	if def != "" {
		return def
	}
	return netdef.Destroy
}

// Pass runs one round: finish what was left half done, then detect and act
// over every running network. Each clashing network is handled under its
// lock on a fresh read, so a network moved earlier in the pass is seen by
// the next.
func (g *Guard) Pass(ctx context.Context) ([]Outcome, error) {
	outcomes := g.Recover(ctx)
	s, err := g.read(ctx, false)
	if err != nil {
		return outcomes, err
	}
	set := g.Settings()
	for _, n := range s.networks {
		if slices.Contains(set.Ignore, n.Name) {
			continue
		}
		if n.Err != nil {
			outcomes = append(outcomes, Outcome{Network: n.Name, Backend: n.Backend, Action: "none",
				Error: n.Err.Error() + " (skipped; the other networks are still checked)"})
			continue
		}
		if !n.Active || len(s.conflictsOf(n)) == 0 {
			continue
		}
		outcomes = append(outcomes, g.act(ctx, n.Backend, n.Name, nil))
	}
	return outcomes, nil
}

// UserRenumber is what `vnetguard renumber NETWORK` asks for.
type UserRenumber struct {
	Targets []netip.Prefix // at most one per family
	Force   bool           // move every subnet even without a clash
}

// Renumber moves a running network now, whatever its policy and damping.
func (g *Guard) Renumber(ctx context.Context, name string, req UserRenumber) Outcome {
	g.Recover(ctx)
	backend := ""
	for _, b := range g.Backends {
		if _, err := b.Network(ctx, name); err == nil {
			backend = b.Name()
			break
		}
	}
	if backend == "" {
		return Outcome{Network: name, Action: "none", Error: fmt.Sprintf("no network named %q", name)}
	}
	return g.act(ctx, backend, name, &req)
}

// act handles one network under its lock on a fresh read.
func (g *Guard) act(ctx context.Context, backend, name string, user *UserRenumber) Outcome {
	set := g.Settings()
	out := Outcome{Network: name, Backend: backend, Action: "none", DryRun: set.DryRun}
	b := g.backend(backend)
	unlock, err := g.lock(ctx, set, backend, name)
	if err != nil {
		out.Error = err.Error()
		return out
	}
	defer unlock()

	// A change of this network left unfinished is carried through first:
	// acting on top of it would record a new intent without what the old
	// one must still put back (a dropped definition, lost ports).
	if pending, err := b.Pending(); err != nil || slices.Contains(pending, name) {
		if err == nil {
			_, err = g.recoverLocked(ctx, set, b, name)
		}
		if err != nil {
			out.Error = fmt.Sprintf("an unfinished change of network %s could not be finished: %v (nothing more done)", name, err)
			return out
		}
	}

	s, err := g.read(ctx, true)
	if err != nil {
		out.Error = err.Error()
		return out
	}
	n, ok := s.find(backend, name)
	if !ok {
		out.Error = fmt.Sprintf("no network named %q", name)
		return out
	}
	if n.Err != nil {
		out.Error = n.Err.Error() + " (nothing done)"
		return out
	}
	mem, err := state.LoadMemory(set.CacheDir)
	if err != nil {
		g.Log.Warn("remembered state unreadable; choosing afresh", "error", err)
	}
	out.Conflicts = s.conflictsOf(n)
	out.Policy = policyOf(n, set.DefaultPolicy)
	req := decide.Request{
		Network:       name,
		Active:        n.Active,
		Policy:        out.Policy,
		Subnets:       n.Live.Network.Subnets(),
		Conflicts:     out.Conflicts,
		Last:          history(mem, name),
		Now:           g.now(),
		DampingWindow: set.DampingWindow,
		Space: decide.Space{
			Host:      s.index,
			Others:    s.others(n),
			Reserved:  set.Reserved,
			Pools:     set.Pools,
			Direction: set.Direction,
			ULA:       set.ULA,
			Usable:    set.Usable,
			Remembered: func(from netip.Prefix) []netip.Prefix {
				return mem.Remembered(name, definedSubnetFor(n, from))
			},
		},
	}
	if user != nil {
		req.UserRenumber, req.Targets, req.Force = true, user.Targets, user.Force
		req.DampingWindow = 0
	}
	d, err := decide.Decide(req)
	out.Note, out.RetryIn, out.Moves = d.Note, d.RetryIn, d.Moves
	if err != nil {
		out.Error = err.Error()
		return out
	}
	out.Action = string(d.Action)
	if set.DryRun {
		return out
	}
	if d.Action == decide.Destroy || d.Action == decide.Renumber {
		g.Log.Info("acting", "network", name, "backend", backend, "action", string(d.Action), "cause", d.Cause)
	}
	switch d.Action {
	case decide.Warn:
		if d.Repeat {
			out.Repeat = true
			return out
		}
		g.Log.Warn("virtual network clashes with the host; its policy is warn, nothing done",
			"network", name, "backend", backend, "cause", d.Cause)
		g.remember(ctx, set, name, nil, state.Action{Action: "warn", Cause: d.Cause})
	case decide.Destroy:
		if err := b.Destroy(ctx, n); err != nil {
			out.Error = err.Error()
			return out
		}
		g.Log.Warn("stopped virtual network clashing with the host (policy destroy; its definition is kept)",
			"network", name, "backend", backend, "cause", d.Cause)
		g.remember(ctx, set, name, nil, state.Action{Action: "destroy", Cause: d.Cause})
	case decide.Renumber:
		if err := g.renumber(ctx, b, n, d); err != nil {
			out.Error = err.Error()
			return out
		}
		msg := "renumbered virtual network clashing with the host"
		if len(d.Moves) > 0 && len(out.Conflicts) == 0 {
			msg = "renumbered virtual network as asked"
		}
		g.Log.Warn(msg, "network", name, "backend", backend,
			"old_subnet", d.Moves[0].From.String(), "new_subnet", d.Moves[0].To.String(),
			"moves", describeMoves(d.Moves), "cause", d.Cause)
		g.rememberRenumber(ctx, set, n, d.Moves, d.Cause)
	}
	return out
}

// renumber edits the live XML (only the moved values change) and has the
// backend restart the network from it.
func (g *Guard) renumber(ctx context.Context, b Backend, n Network, d decide.Decision) error {
	nm := make([]netdef.Move, len(d.Moves))
	for i, m := range d.Moves {
		nm[i] = netdef.Move{From: m.From, To: m.To}
	}
	newXML, notes, err := n.Live.Renumber(nm)
	if err != nil {
		return fmt.Errorf("edit XML of network %s: %w (nothing done)", n.Name, err)
	}
	nd, err := netdef.Parse(newXML)
	if err == nil {
		if probs := nd.Validate(); len(probs) > 0 {
			err = probs[0]
		}
	}
	if err != nil {
		return fmt.Errorf("renumbered XML of network %s is invalid: %w (nothing done)", n.Name, err)
	}
	for _, note := range notes {
		g.Log.Info("renumber note", "network", n.Name, "note", note)
	}
	return b.Renumber(ctx, n, newXML)
}

// remember records an action and, for a renumber, where each defined
// subnet went, under the state file's lock.
func (g *Guard) remember(ctx context.Context, set Settings, name string, moved map[netip.Prefix]netip.Prefix, a state.Action) {
	if set.CacheDir == "" {
		return
	}
	a.Time = g.now().UTC()
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err := state.UpdateMemory(lctx, set.CacheDir, func(m *state.Memory) {
		for from, to := range moved {
			m.Remember(name, from, to)
		}
		m.Record(name, a)
	})
	if err != nil {
		g.Log.Warn("cannot save remembered state", "error", err)
	}
}

func history(mem *state.Memory, name string) decide.History {
	if mem == nil || mem.Networks[name] == nil || mem.Networks[name].LastAction == nil {
		return decide.History{}
	}
	a := mem.Networks[name].LastAction
	return decide.History{Action: a.Action, Time: a.Time, Cause: a.Cause, Left: a.Left}
}

// definedSubnetFor maps a live subnet to the persistent definition's subnet
// in the same position (n-th of its family): memory is keyed by what the
// user defined, which stays put while the live network moves around.
func definedSubnetFor(n Network, live netip.Prefix) netip.Prefix {
	if n.Defined == nil {
		return live
	}
	nth := 0
	for _, s := range n.Live.Network.Subnets() {
		if s == live {
			break
		}
		if s.Addr().Is4() == live.Addr().Is4() {
			nth++
		}
	}
	for _, s := range n.Defined.Network.Subnets() {
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

func (g *Guard) lock(ctx context.Context, set Settings, backend, name string) (func(), error) {
	wait := set.LockWait
	if wait == 0 {
		wait = 30 * time.Second
	}
	lctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	unlock, err := state.Lock(lctx, set.LockDir, backend+"-"+name)
	if err != nil && errors.Is(err, context.DeadlineExceeded) {
		return nil, fmt.Errorf("network %s is busy: another vnetguard run holds its lock (%w)", name, err)
	}
	return unlock, err
}

// Recover completes or undoes every unfinished effect the backends know
// of, each under its network's lock and on a fresh context: an expired
// caller must not leave a network half renumbered. A network whose lock is
// held for long is being handled by a live run, which finishes it itself.
func (g *Guard) Recover(ctx context.Context) []Outcome {
	return g.RecoverWaiting(ctx, 500*time.Millisecond)
}

// RecoverWaiting is Recover waiting up to lockWait for each network's lock
// (a run that takes over from a hook at its deadline waits for the hook to
// exit).
func (g *Guard) RecoverWaiting(ctx context.Context, lockWait time.Duration) []Outcome {
	set := g.Settings()
	set.LockWait = lockWait
	timeout := set.RecoverTimeout
	if timeout == 0 {
		timeout = 2 * time.Minute
	}
	var outcomes []Outcome
	for _, b := range g.Backends {
		names, err := b.Pending()
		if err != nil {
			g.Log.Error("cannot read unfinished effects", "backend", b.Name(), "error", err)
			continue
		}
		for _, name := range names {
			outcomes = append(outcomes, g.recoverOne(ctx, set, b, name, timeout))
		}
	}
	return outcomes
}

// recoverLocked runs a backend's recovery of one network, whose lock the
// caller holds, on a fresh context.
func (g *Guard) recoverLocked(ctx context.Context, set Settings, b Backend, name string) (string, error) {
	timeout := set.RecoverTimeout
	if timeout == 0 {
		timeout = 2 * time.Minute
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	r, err := b.Recover(rctx, name)
	if err == nil && len(r.Moves) > 0 {
		g.rememberRecovered(rctx, set, b, name, r.Moves)
	}
	return r.Note, err
}

// rememberRecovered records a renumber that recovery carried through, as
// act records one it made.
func (g *Guard) rememberRecovered(ctx context.Context, set Settings, b Backend, name string, moves []Move) {
	n, err := b.Network(ctx, name)
	if err != nil {
		n = Network{Name: name}
	}
	g.rememberRenumber(ctx, set, n, moves, "an interrupted renumber, carried through")
}

// rememberRenumber records a renumber: where each defined subnet went (so
// the network returns there), and the action for damping (no second move
// within the window, never back onto a subnet it left).
func (g *Guard) rememberRenumber(ctx context.Context, set Settings, n Network, moves []Move, cause string) {
	left := make([]netip.Prefix, len(moves))
	remembered := map[netip.Prefix]netip.Prefix{}
	for i, m := range moves {
		left[i] = m.From
		from := m.From
		if n.Live != nil {
			from = definedSubnetFor(n, m.From)
		}
		remembered[from] = m.To
	}
	g.remember(ctx, set, n.Name, remembered, state.Action{Action: "renumber", Cause: cause, Moves: describeMoves(moves), Left: left})
}

// describeMoves writes moves as "old -> new", for logs and memory.json.
func describeMoves(moves []Move) []string {
	out := make([]string, len(moves))
	for i, m := range moves {
		out[i] = m.From.String() + " -> " + m.To.String()
	}
	return out
}

func (g *Guard) recoverOne(ctx context.Context, set Settings, b Backend, name string, timeout time.Duration) Outcome {
	out := Outcome{Network: name, Backend: b.Name(), Action: "recover"}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	unlock, err := g.lock(rctx, set, b.Name(), name)
	if err != nil {
		out.Note = "left to the run that holds its lock: " + err.Error()
		out.Deferred = true
		return out
	}
	defer unlock()
	note, err := g.recoverLocked(rctx, set, b, name)
	out.Note = note
	if err != nil {
		out.Error = err.Error()
		g.Log.Error("could not finish an interrupted change; will retry on the next run",
			"network", name, "backend", b.Name(), "error", err)
		return out
	}
	if note != "" {
		g.Log.Warn("finished an interrupted change", "network", name, "backend", b.Name(), "outcome", note)
	}
	return out
}

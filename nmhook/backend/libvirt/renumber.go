package libvirt

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vnetguard/vnetguard/netdef"
	"github.com/vnetguard/vnetguard/netdef/libvirt/rpc"
	"github.com/vnetguard/vnetguard/nmhook/backend"
	"github.com/vnetguard/vnetguard/nmhook/hostview"
)

// intent is the record of a renumber in progress. Recovery works from
// what it observes, so the record holds what cannot be observed once the
// network is down: the XML on both sides, the definition, and who was
// connected.
type intent struct {
	Version    int       `json:"version"`
	Network    string    `json:"network"`
	Started    time.Time `json:"started"`
	OldXML     string    `json:"old_xml"`     // the live XML before
	NewXML     string    `json:"new_xml"`     // the live XML after
	DefinedXML string    `json:"defined_xml"` // the persistent definition; "" for a transient network
	// Target says which XML the network must end up running: "new", or
	// "old" once starting the new one failed (set before the old one is
	// started again).
	Target string `json:"target"`
	// Ports are libvirt's network ports (one per guest interface): they
	// vanish when the network is destroyed and are reclaimed after.
	Ports []rpc.Port `json:"ports"`
	// Taps are every port of the bridge before (qemu taps and veths);
	// NICs the running domains' interfaces on the network.
	Taps []string       `json:"taps"`
	NICs []rpc.GuestNIC `json:"nics"`
}

const intentVersion = 1

func intentKey(network string) string { return Name + ":" + network }

// Renumber restarts n from newXML, keeping its guests connected. The
// intent is on disk before the network is stopped; from then on the same
// code as recovery carries the change through, from what it observes.
func (b *Backend) Renumber(ctx context.Context, n backend.Network, newXML []byte) error {
	in := &intent{Version: intentVersion, Network: n.Name, Started: time.Now().UTC(),
		OldXML: string(n.Live.Raw), NewXML: string(newXML), Target: "new"}
	if n.Defined != nil {
		in.DefinedXML = string(n.Defined.Raw)
	}
	err := b.call(ctx, func(c *rpc.Conn) (err error) {
		if in.Ports, err = c.Ports(ctx, n.Name); err != nil {
			return err
		}
		in.NICs, err = c.GuestNICsOn(ctx, n.Name, n.Live.Network.BridgeName())
		return err
	})
	if err != nil {
		return fmt.Errorf("read the guests of network %s: %w (nothing done)", n.Name, err)
	}
	if br := n.Live.Network.BridgeName(); br != "" {
		if in.Taps, err = hostview.BridgePorts(br); err != nil {
			return fmt.Errorf("list the ports of bridge %s: %w (nothing done)", br, err)
		}
	}
	// Never overwrite an unfinished change: its record is the only copy
	// of what it must put back.
	var pending intent
	if ok, err := b.Intents.Get(intentKey(n.Name), &pending); ok || err != nil {
		return fmt.Errorf("network %s has an unfinished change pending; it must be recovered first (nothing done)", n.Name)
	}
	if err := b.Intents.Put(intentKey(n.Name), in); err != nil {
		return fmt.Errorf("%w (nothing done)", err)
	}
	// From here on the change is carried through whatever is left of the
	// caller's time: a network must not stay stopped, nor a guest's link
	// down, because a deadline passed in between.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.completeTimeout())
	defer cancel()
	if err := b.call(ctx, func(c *rpc.Conn) error { return c.DestroyNetwork(ctx, n.Name) }); err != nil {
		// Maybe stopped, maybe not: complete from what is there now, on
		// a fresh connection.
		b.Log.Warn("stopping the network for its renumber failed; checking what happened", "network", n.Name, "error", err)
	}
	st, note, err := b.complete(ctx, in)
	if err != nil {
		return err
	}
	if st != stepFinish || in.Target != "new" {
		return fmt.Errorf("network %s was not renumbered: %s", n.Name, note)
	}
	return nil
}

func (b *Backend) completeTimeout() time.Duration {
	if b.CompleteTimeout > 0 {
		return b.CompleteTimeout
	}
	return 2 * time.Minute
}

// Pending names the networks with a renumber left unfinished.
func (b *Backend) Pending() ([]string, error) { return b.Intents.Pending(Name) }

// Recover completes or undoes an unfinished renumber.
func (b *Backend) Recover(ctx context.Context, name string) (backend.Recovered, error) {
	in := &intent{}
	ok, err := b.Intents.Get(intentKey(name), in)
	if err != nil || !ok {
		return backend.Recovered{}, err
	}
	if in.Version != intentVersion {
		return backend.Recovered{}, fmt.Errorf("intent for network %s has version %d, this vnetguard knows %d; left in place", name, in.Version, intentVersion)
	}
	st, note, err := b.complete(ctx, in)
	r := backend.Recovered{Note: note}
	if err == nil && st == stepFinish && in.Target != "old" {
		r.Moves = backend.MovesBetween([]byte(in.OldXML), []byte(in.NewXML))
	}
	return r, err
}

// observed is what libvirt says of the network now.
type observed struct {
	Found, Active, Persistent bool
	Live                      []netip.Prefix
}

type step int

const (
	stepFinish  step = iota // running on the target: re-attach the guests
	stepAbandon             // running on the old subnets: it was never stopped; nothing to undo
	stepLeave               // running on subnets of no one's choosing here: someone else restarted it
	stepStart               // not running: start the target
)

// nextStep decides, from what is observed, how to carry a renumber on.
func nextStep(target, other []netip.Prefix, obs observed) step {
	switch {
	case !obs.Active:
		return stepStart
	case sameSubnets(obs.Live, target):
		return stepFinish
	case sameSubnets(obs.Live, other):
		return stepAbandon
	}
	return stepLeave
}

func sameSubnets(a, b []netip.Prefix) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	cmp := func(x, y netip.Prefix) int { return x.Masked().Addr().Compare(y.Masked().Addr()) }
	slices.SortFunc(a, cmp)
	slices.SortFunc(b, cmp)
	return slices.EqualFunc(a, b, func(x, y netip.Prefix) bool { return x.Masked() == y.Masked() })
}

func subnetsOf(xml string) ([]netip.Prefix, error) {
	d, err := netdef.Parse([]byte(xml))
	if err != nil {
		return nil, err
	}
	return d.Network.Subnets(), nil
}

// complete carries a renumber through from what it observes, step by step,
// each step idempotent: it may run again after a kill at any point. It
// returns the step it ended with. The record is deleted only once the
// network runs with its guests re-attached; on an error it stays for the
// next run.
func (b *Backend) complete(ctx context.Context, in *intent) (step, string, error) {
	key := intentKey(in.Network)
	oldNets, err1 := subnetsOf(in.OldXML)
	newNets, err2 := subnetsOf(in.NewXML)
	if err := errors.Join(err1, err2); err != nil {
		return 0, "", fmt.Errorf("intent for network %s is unusable: %w; left in place", in.Network, err)
	}
	var notes []string
	refusals := 0
	for attempt := 0; ; attempt++ {
		obs, err := b.observe(ctx, in.Network)
		if err != nil {
			return 0, "", fmt.Errorf("network %s: %w (will retry)", in.Network, err)
		}
		if err := b.ensureDefined(ctx, in, obs, &notes); err != nil {
			return 0, "", err
		}
		target, other := newNets, oldNets
		if in.Target == "old" {
			target, other = oldNets, newNets
		}
		st := nextStep(target, other, obs)
		switch st {
		case stepFinish:
			if err := b.reattach(ctx, in, true, &notes); err != nil {
				return st, strings.Join(notes, "; "), fmt.Errorf("network %s runs, but its guests are not all re-attached: %w (will retry)", in.Network, err)
			}
			if in.Target == "old" {
				notes = append(notes, "back on its old subnets")
			} else {
				notes = append(notes, "running on its new subnets")
			}
			return st, strings.Join(notes, "; "), b.Intents.Delete(key)
		case stepAbandon:
			// Killed before the network was stopped (or libvirtd started
			// it again from its definition): it runs where it was, with
			// its guests. The next pass decides afresh.
			if err := b.reattach(ctx, in, false, &notes); err != nil {
				return st, strings.Join(notes, "; "), fmt.Errorf("network %s: %w (will retry)", in.Network, err)
			}
			notes = append(notes, "interrupted before the network was stopped; it stays on its old subnets")
			return st, strings.Join(notes, "; "), b.Intents.Delete(key)
		case stepLeave:
			// Someone else started it meanwhile (on its defined subnets,
			// say): leave the addressing, but bring the guests back.
			if err := b.reattach(ctx, in, true, &notes); err != nil {
				return st, strings.Join(notes, "; "), fmt.Errorf("network %s: %w (will retry)", in.Network, err)
			}
			notes = append(notes, "the network was started by someone else meanwhile; its subnets are left as they are")
			return st, strings.Join(notes, "; "), b.Intents.Delete(key)
		case stepStart:
			if attempt > 3 {
				return st, strings.Join(notes, "; "), fmt.Errorf("network %s did not stay running (will retry)", in.Network)
			}
			xml := in.NewXML
			if in.Target == "old" {
				xml = in.OldXML
			}
			// libvirt counts the network as stopped: a bridge of its name
			// is what an interrupted stop left behind.
			if gone, err := hostview.RemoveStaleBridge(bridgeOf(xml)); err != nil {
				notes = append(notes, err.Error())
			} else if gone {
				notes = append(notes, "removed the bridge an interrupted stop left behind")
			}
			if stopped, err := stopStaleDnsmasq(b.StatusDir, in.Network); err != nil {
				notes = append(notes, err.Error())
			} else if stopped {
				notes = append(notes, "stopped the dnsmasq a killed libvirtd left running")
			}
			err := b.call(ctx, func(c *rpc.Conn) error { return c.CreateNetworkXML(ctx, xml) })
			if err == nil {
				continue // observe what happened
			}
			if !rpc.Refused(err) {
				// No answer: it may have started. Observe on the next run
				// rather than guess.
				return st, strings.Join(notes, "; "), fmt.Errorf("network %s: starting it: %w (will retry)", in.Network, err)
			}
			// libvirt refused. Try the other side once in this run: the
			// old subnets when the new ones fail (dnsmasq, a firewall),
			// and the new ones again when the old ones fail too (libvirt
			// refuses a subnet that clashes with a route, which the old
			// one usually does). The record keeps the side to try next.
			refusals++
			from := in.Target
			in.Target = map[string]string{"new": "old", "old": "new"}[in.Target]
			notes = append(notes, fmt.Sprintf("starting it on its %s subnets failed (%v)", from, err))
			b.Log.Warn("starting the network failed; trying its other subnets", "network", in.Network, "failed", from, "error", err)
			if perr := b.Intents.Put(key, in); perr != nil {
				return st, strings.Join(notes, "; "), perr
			}
			if refusals > 1 {
				// A failed create drops the definition: put it back
				// before giving up for this run.
				if obs, oerr := b.observe(ctx, in.Network); oerr == nil {
					if derr := b.ensureDefined(ctx, in, obs, &notes); derr != nil {
						notes = append(notes, derr.Error())
					}
				}
				return st, strings.Join(notes, "; "), fmt.Errorf("network %s could start on neither its new nor its old subnets (will retry)", in.Network)
			}
		}
	}
}

func (b *Backend) observe(ctx context.Context, name string) (observed, error) {
	var n rpc.Network
	err := b.call(ctx, func(c *rpc.Conn) (err error) {
		n, err = c.Network(ctx, name, false)
		return err
	})
	if errors.Is(err, rpc.ErrNotFound) {
		return observed{}, nil
	}
	if err != nil {
		return observed{}, err
	}
	obs := observed{Found: true, Active: n.Active, Persistent: n.Persistent}
	if n.Active {
		if obs.Live, err = subnetsOf(n.LiveXML); err != nil {
			return observed{}, fmt.Errorf("live XML: %w", err)
		}
	}
	return obs, nil
}

// ensureDefined puts a persistent definition back when libvirt dropped it
// (libvirt 9 forgets it after a failed create, until libvirtd restarts),
// from the definition saved in the intent, unchanged.
func (b *Backend) ensureDefined(ctx context.Context, in *intent, obs observed, notes *[]string) error {
	if in.DefinedXML == "" || (obs.Found && obs.Persistent) {
		return nil
	}
	err := b.call(ctx, func(c *rpc.Conn) error { return c.DefineNetworkXML(ctx, in.DefinedXML) })
	if err != nil {
		return fmt.Errorf("network %s lost its definition and defining it again failed: %w (will retry)", in.Network, err)
	}
	*notes = append(*notes, "its persistent definition was defined again")
	return nil
}

// reattach brings the guests back onto the running network: libvirt's
// ports reclaimed, the taps and veths put back into the bridge, and, when
// the network was restarted, the guests' links bounced so they re-lease. A
// guest that went away meanwhile is no error. An error means it must be
// tried again (the caller keeps the record): a port or a link whose state
// is unknown.
func (b *Backend) reattach(ctx context.Context, in *intent, restarted bool, notes *[]string) error {
	oldBridge, newBridge := bridgeOf(in.OldXML), bridgeOf(in.NewXML)
	if in.Target == "old" {
		newBridge = oldBridge
	}
	// The guests as they are now, not as recorded: a domain may have
	// stopped or started since (and SetLink wants the interface as libvirt
	// has it now). The record is the fallback for what libvirt lost: the
	// ports.
	var existing []rpc.Port
	var nics []rpc.GuestNIC
	if err := b.call(ctx, func(c *rpc.Conn) (err error) {
		if existing, err = c.Ports(ctx, in.Network); err != nil {
			return err
		}
		nics, err = c.GuestNICsOn(ctx, in.Network, newBridge)
		return err
	}); err != nil {
		return fmt.Errorf("list its ports and guests: %w", err)
	}
	var errs []error
	for _, p := range in.Ports {
		if slices.ContainsFunc(existing, func(e rpc.Port) bool { return e.UUID == p.UUID }) {
			continue
		}
		// Only the port of a guest still running with it: reclaiming
		// one whose domain went away would leave libvirt an orphan.
		if !slices.ContainsFunc(nics, func(n rpc.GuestNIC) bool { return n.PortID == p.UUID }) {
			continue
		}
		if err := b.call(ctx, func(c *rpc.Conn) error { return c.ReclaimPort(ctx, in.Network, p) }); err != nil {
			errs = append(errs, fmt.Errorf("port %s not reclaimed: %w", p.UUID, err))
		}
	}
	var taps, veths []string
	for _, n := range nics {
		if n.Target != "" {
			taps = append(taps, n.Target)
		}
	}
	isVMTap := func(t string) bool {
		return slices.Contains(taps, t) || slices.ContainsFunc(in.NICs, func(n rpc.GuestNIC) bool { return n.Target == t })
	}
	for _, t := range in.Taps {
		if !isVMTap(t) {
			veths = append(veths, t)
		}
	}
	// A domain records its bridge: if the name changed, the link update
	// below moves its tap, and a tap put there by hand would be wrong.
	if newBridge == oldBridge && newBridge != "" {
		if err := hostview.Replug(newBridge, taps, false); err != nil {
			*notes = append(*notes, fmt.Sprintf("re-plugging taps: %v", err))
		}
	}
	if newBridge != "" {
		if err := hostview.Replug(newBridge, veths, restarted); err != nil {
			*notes = append(*notes, fmt.Sprintf("re-plugging ports: %v", err))
		}
	}
	if restarted {
		errs = append(errs, b.bounceNICs(ctx, nics)...)
	}
	return errors.Join(errs...)
}

// bounceNICs sets each guest NIC's link down, then up, through libvirt, all
// domains at once: qemu owns the emulated NIC's link state, so this is the
// only carrier change a VM guest sees. The up is tried whatever became of
// the down (its outcome may be unknown), and retried on a fresh
// connection: no guest is ever left with its link down.
func (b *Backend) bounceNICs(ctx context.Context, nics []rpc.GuestNIC) []error {
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for _, nic := range nics {
		wg.Go(func() {
			derr := b.setLink(ctx, nic, false)
			if errors.Is(derr, rpc.ErrNotFound) {
				return // the domain or its NIC went away
			}
			if derr == nil {
				select {
				case <-time.After(b.LinkDown):
				case <-ctx.Done():
				}
			}
			var uerr error
			for range 3 {
				uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
				uerr = b.setLink(uctx, nic, true)
				cancel()
				if uerr == nil || errors.Is(uerr, rpc.ErrNotFound) {
					return
				}
			}
			mu.Lock()
			errs = append(errs, fmt.Errorf("guest %s (%s): link not set up again: %w", nic.Domain, nic.MAC, uerr))
			mu.Unlock()
		})
	}
	wg.Wait()
	return errs
}

func (b *Backend) setLink(ctx context.Context, nic rpc.GuestNIC, up bool) error {
	return b.call(ctx, func(c *rpc.Conn) error { return c.SetLink(ctx, nic, up) })
}

func bridgeOf(xml string) string {
	d, err := netdef.Parse([]byte(xml))
	if err != nil {
		return ""
	}
	return d.Network.BridgeName()
}

// Package decide says what to do about one virtual network, from plain
// values: its policy, its conflicts with the host, what vnetguard did to it
// lately, and where its subnets could go. It does no I/O: the caller reads
// the world, calls Decide, and carries the decision out.
package decide

import (
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/vnetguard/vnetguard/conflict"
	"github.com/vnetguard/vnetguard/netdef"
)

// Action is what a decision asks for.
type Action string

const (
	None     Action = "none"     // nothing to do
	Warn     Action = "warn"     // report the clash, change nothing
	Destroy  Action = "destroy"  // stop the network
	Renumber Action = "renumber" // move the subnets in Decision.Moves
	Hold     Action = "hold"     // would renumber, but damping holds it back for Decision.RetryIn
)

// History is what vnetguard last did to the network (zero: nothing known).
type History struct {
	Action string         // "renumber", "destroy", "warn" or ""
	Time   time.Time      // when
	Cause  string         // the clash it answered
	Left   []netip.Prefix // the subnets a renumber moved away from
}

// Space is where a network's subnets may move: everything the planner
// needs besides the network itself.
type Space struct {
	Host      *conflict.Index
	Others    []netip.Prefix // every other network's subnets, running or only defined
	Reserved  []netip.Prefix
	Pools     []conflict.Pool
	Direction conflict.Direction
	ULA       conflict.ULAGlobalID
	Usable    map[conflict.Family]bool
	// Remembered lists earlier homes of a live subnet, best first. May be nil.
	Remembered func(from netip.Prefix) []netip.Prefix
}

// Request describes one network at one moment.
type Request struct {
	Network   string
	Active    bool
	Policy    netdef.OnConflict // the network's own, or the configured default
	Subnets   []netip.Prefix    // live subnets
	Conflicts []conflict.Conflict

	// A user asked for a renumber now (vnetguard renumber NETWORK): policy
	// and damping do not apply. Targets are the user's explicit subnets,
	// at most one per family; Force moves every subnet even without a
	// clash.
	UserRenumber bool
	Targets      []netip.Prefix
	Force        bool

	Last          History
	Now           time.Time
	DampingWindow time.Duration // automatic runs: at most one move per window, never back within it
	Space         Space
}

// Decision is the answer for one network.
type Decision struct {
	Action  Action
	Cause   string          // the first conflict's reason, or why the user asked
	Moves   []conflict.Move // for Renumber
	Note    string          // why nothing (more) is done, for the user
	RetryIn time.Duration   // for Hold: try again after this
	// Repeat: a Warn for the same cause as the last one. The caller need
	// not log or record it again (a daemon re-checks on every event).
	Repeat bool
}

// Decide returns what to do with the network. An error means the network
// should be renumbered but there is no valid plan (nothing is done).
func Decide(r Request) (Decision, error) {
	d := Decision{Action: None, Cause: causeOf(r.Conflicts, r.UserRenumber)}
	if !r.Active {
		d.Note = "network is not running; its definition is left as it is"
		if r.UserRenumber {
			return d, fmt.Errorf("cannot renumber network %s: it is not running", r.Network)
		}
		return d, nil
	}
	if r.UserRenumber {
		return decideUserRenumber(r, d)
	}
	if len(r.Conflicts) == 0 {
		return d, nil
	}
	switch r.Policy {
	case netdef.Warn:
		d.Action = Warn
		d.Repeat = r.Last.Action == "warn" && r.Last.Cause == d.Cause
		return d, nil
	case netdef.Destroy:
		d.Action = Destroy
		return d, nil
	case netdef.Renumber:
	default:
		d.Note = fmt.Sprintf("unknown policy %q; nothing done", r.Policy)
		return d, fmt.Errorf("network %s: unknown policy %q (nothing done)", r.Network, r.Policy)
	}
	if wait := Damped(r.Last, r.Now, r.DampingWindow); wait > 0 {
		d.Action = Hold
		d.RetryIn = wait
		d.Note = fmt.Sprintf("renumbered %v ago; held back for %v until the damping window ends",
			(r.DampingWindow - wait).Round(time.Millisecond), wait.Round(time.Millisecond))
		return d, nil
	}
	moves, err := Plan(planInput(r, subnetsOf(r.Conflicts), nil, RecentlyLeft(r.Last, r.Now, r.DampingWindow)))
	if err != nil {
		return d, fmt.Errorf("network %s: %w (nothing done)", r.Network, err)
	}
	if len(moves) == 0 {
		d.Note = "nothing to move"
		return d, nil
	}
	d.Action, d.Moves = Renumber, moves
	return d, nil
}

// decideUserRenumber: targets move what they name; without targets the
// clashing subnets move, or every subnet with Force; a network that clashes
// with nothing and was given no target stays where it is.
func decideUserRenumber(r Request, d Decision) (Decision, error) {
	clashing := subnetsOf(r.Conflicts)
	if r.Force && len(r.Targets) == 0 {
		clashing = slices.Clone(r.Subnets)
	}
	var targets []netip.Prefix
	for _, t := range r.Targets {
		if slices.Contains(r.Subnets, t) {
			// Already there: restarting would gain nothing, and on a
			// clashing subnet libvirt would refuse to start it again.
			d.Note = joinNote(d.Note, "already on "+t.String())
			clashing = slices.DeleteFunc(clashing, func(p netip.Prefix) bool { return p == t })
			continue
		}
		targets = append(targets, t)
	}
	if len(targets) == 0 && len(clashing) == 0 {
		if len(r.Targets) == 0 {
			d.Note = "no clash with the host; nothing to move (name a subnet with --ipv4/--ipv6, or use --force)"
		}
		return d, nil
	}
	moves, err := Plan(planInput(r, clashing, targets, nil))
	if err != nil {
		return d, fmt.Errorf("network %s: %w (nothing done)", r.Network, err)
	}
	if len(moves) == 0 {
		d.Note = joinNote(d.Note, "nothing to move")
		return d, nil
	}
	d.Action, d.Moves = Renumber, moves
	return d, nil
}

func planInput(r Request, clashing, targets, left []netip.Prefix) PlanInput {
	s := r.Space
	return PlanInput{
		Network:    r.Network,
		Own:        r.Subnets,
		Clashing:   clashing,
		Targets:    targets,
		Others:     s.Others,
		Remembered: s.Remembered,
		Host:       s.Host,
		Reserved:   append(slices.Clone(s.Reserved), left...),
		Pools:      s.Pools,
		Direction:  s.Direction,
		ULA:        s.ULA,
		Usable:     s.Usable,
	}
}

// Damped returns how long a network must still wait before an automatic
// renumber: zero unless it was renumbered within the window before now.
func Damped(last History, now time.Time, window time.Duration) time.Duration {
	if window <= 0 || last.Action != "renumber" {
		return 0
	}
	since := now.Sub(last.Time)
	if since < 0 || since >= window {
		return 0
	}
	return window - since
}

// RecentlyLeft: within the damping window a network never goes back to the
// subnets it just left (no ping-pong between two subnets).
func RecentlyLeft(last History, now time.Time, window time.Duration) []netip.Prefix {
	if Damped(last, now, window) == 0 {
		return nil
	}
	return last.Left
}

func causeOf(found []conflict.Conflict, user bool) string {
	if len(found) > 0 {
		return found[0].Reason
	}
	if user {
		return "asked by the user"
	}
	return ""
}

func joinNote(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

package decide

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vnetguard/vnetguard/conflict"
	"github.com/vnetguard/vnetguard/netdef"
)

var t0 = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

// clashReq is network "default" on 192.168.122.0/24 while the host has a
// LAN on the same range.
func clashReq(policy netdef.OnConflict) Request {
	host := hostWith("192.168.122.0/24")
	n := conflict.Network{Name: "default", Bridge: "virbr0", Subnets: []netip.Prefix{pfx("192.168.122.0/24")}}
	return Request{
		Network:       "default",
		Active:        true,
		Policy:        policy,
		Subnets:       n.Subnets,
		Conflicts:     host.Check(n),
		Now:           t0,
		DampingWindow: 10 * time.Second,
		Space:         Space{Host: host},
	}
}

func TestDecidePolicies(t *testing.T) {
	for _, tc := range []struct {
		policy netdef.OnConflict
		want   Action
	}{
		{netdef.Renumber, Renumber},
		{netdef.Destroy, Destroy},
		{netdef.Warn, Warn},
	} {
		d, err := Decide(clashReq(tc.policy))
		if err != nil {
			t.Fatalf("%s: %v", tc.policy, err)
		}
		if d.Action != tc.want {
			t.Errorf("policy %s: action %s, want %s", tc.policy, d.Action, tc.want)
		}
		if d.Cause == "" {
			t.Errorf("policy %s: no cause", tc.policy)
		}
		if tc.want == Renumber && (len(d.Moves) != 1 || d.Moves[0].From != pfx("192.168.122.0/24") || d.Moves[0].To.Overlaps(pfx("192.168.122.0/24"))) {
			t.Errorf("renumber moves = %v", d.Moves)
		}
	}
}

func TestDecideUnknownPolicyDoesNothing(t *testing.T) {
	d, err := Decide(clashReq("explode"))
	if err == nil || d.Action != None {
		t.Fatalf("got %v, %v; want an error and no action", d, err)
	}
}

func TestDecideNoConflictNoAction(t *testing.T) {
	r := clashReq(netdef.Renumber)
	r.Conflicts = nil
	if d, err := Decide(r); err != nil || d.Action != None {
		t.Fatalf("got %+v, %v", d, err)
	}
}

func TestDecideInactiveIsLeftAlone(t *testing.T) {
	r := clashReq(netdef.Renumber)
	r.Active = false
	if d, err := Decide(r); err != nil || d.Action != None || d.Note == "" {
		t.Fatalf("automatic: got %+v, %v", d, err)
	}
	r.UserRenumber = true
	if _, err := Decide(r); err == nil || !strings.Contains(err.Error(), "not running") {
		t.Fatalf("user: err = %v, want 'not running'", err)
	}
}

func TestWarnRepeatsOnlyForANewCause(t *testing.T) {
	r := clashReq(netdef.Warn)
	first, _ := Decide(r)
	if first.Repeat {
		t.Fatal("first warning marked as a repeat")
	}
	r.Last = History{Action: "warn", Time: t0.Add(-time.Hour), Cause: first.Cause}
	if d, _ := Decide(r); !d.Repeat {
		t.Error("same cause again not marked as a repeat")
	}
	r.Last.Cause = "some other clash"
	if d, _ := Decide(r); d.Repeat {
		t.Error("a new cause marked as a repeat")
	}
}

func TestDampingHoldsThenReleases(t *testing.T) {
	r := clashReq(netdef.Renumber)
	r.Last = History{Action: "renumber", Time: t0.Add(-4 * time.Second), Left: []netip.Prefix{pfx("192.168.254.0/24")}}
	d, err := Decide(r)
	if err != nil || d.Action != Hold || d.RetryIn != 6*time.Second {
		t.Fatalf("inside the window: %+v, %v; want hold for 6s", d, err)
	}
	r.Now = t0.Add(7 * time.Second) // 11 s after the last move
	d, err = Decide(r)
	if err != nil || d.Action != Renumber {
		t.Fatalf("after the window: %+v, %v", d, err)
	}
	// Damping never applies to what a user asks for.
	r.Now = t0
	r.UserRenumber = true
	if d, _ := Decide(r); d.Action != Renumber {
		t.Fatalf("user renumber held back: %+v", d)
	}
}

func TestNeverBackOntoARecentlyLeftSubnet(t *testing.T) {
	r := clashReq(netdef.Renumber)
	// The first choice on bare metal counts down from 192.168.254.0/24.
	first, err := Decide(r)
	if err != nil {
		t.Fatal(err)
	}
	left := first.Moves[0].To
	// Moved there and back within the window... then the window passes
	// only partly: hold. Once it is over, the left subnet is free again.
	r.Last = History{Action: "renumber", Time: t0.Add(-11 * time.Second), Left: []netip.Prefix{left}}
	if l := RecentlyLeft(r.Last, r.Now, r.DampingWindow); l != nil {
		t.Fatalf("left subnets outside the window: %v", l)
	}
	r.Last.Time = t0.Add(-9 * time.Second)
	if l := RecentlyLeft(r.Last, r.Now, r.DampingWindow); !slices.Equal(l, []netip.Prefix{left}) {
		t.Fatalf("left subnets inside the window: %v", l)
	}
	// Decide with the window's reserved subnet in force (as Plan sees it).
	in := planInput(r, subnetsOf(r.Conflicts), nil, RecentlyLeft(r.Last, r.Now, r.DampingWindow))
	moves, err := Plan(in)
	if err != nil {
		t.Fatal(err)
	}
	if moves[0].To == left {
		t.Fatalf("moved back onto %s, which it left 9 s ago", left)
	}
}

func TestUserRenumberWithoutClashMovesNothing(t *testing.T) {
	r := clashReq(netdef.Warn)
	r.Conflicts = nil
	r.UserRenumber = true
	d, err := Decide(r)
	if err != nil || d.Action != None || !strings.Contains(d.Note, "--force") {
		t.Fatalf("got %+v, %v; want no action and a hint", d, err)
	}
	r.Force = true
	if d, err := Decide(r); err != nil || d.Action != Renumber || len(d.Moves) != 1 {
		t.Fatalf("--force: %+v, %v", d, err)
	}
	r.Force = false
	r.Targets = []netip.Prefix{pfx("10.77.0.0/24")}
	d, err = Decide(r)
	if err != nil || d.Action != Renumber || d.Moves[0].To != pfx("10.77.0.0/24") {
		t.Fatalf("explicit target: %+v, %v", d, err)
	}
	if d.Cause != "asked by the user" {
		t.Errorf("cause = %q", d.Cause)
	}
}

func TestUserTargetOnTheCurrentSubnetIsANoOp(t *testing.T) {
	// Moving a network onto the subnet it is on would restart it for
	// nothing, and on a clashing subnet libvirt refuses to start it again.
	r := clashReq(netdef.Renumber)
	r.UserRenumber = true
	r.Targets = []netip.Prefix{pfx("192.168.122.0/24")}
	d, err := Decide(r)
	if err != nil {
		t.Fatal(err)
	}
	if d.Action != None || !strings.Contains(d.Note, "already on 192.168.122.0/24") {
		t.Fatalf("got %+v; want no action, 'already on'", d)
	}
}

func TestUserTargetMustBeFree(t *testing.T) {
	r := clashReq(netdef.Renumber)
	r.UserRenumber = true
	r.Space.Others = []netip.Prefix{pfx("10.9.0.0/16")}
	r.Targets = []netip.Prefix{pfx("10.9.8.0/24")}
	if _, err := Decide(r); err == nil || !strings.Contains(err.Error(), "not free") {
		t.Fatalf("err = %v, want 'not free'", err)
	}
}

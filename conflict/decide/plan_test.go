package decide

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/vnetguard/vnetguard/conflict"
)

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func hostWith(prefixes ...string) *conflict.Index {
	var h conflict.HostView
	for _, p := range prefixes {
		h.Routes = append(h.Routes, conflict.HostRoute{Dst: pfx(p), Interface: "up0", Table: 254})
	}
	return conflict.NewIndex(h)
}

func TestPlanMovesOnlyClashingSubnets(t *testing.T) {
	moves, err := Plan(PlanInput{
		Network:  "n",
		Own:      []netip.Prefix{pfx("192.168.122.0/24"), pfx("fd00:1::/64")},
		Clashing: []netip.Prefix{pfx("192.168.122.0/24")},
		Host:     hostWith("192.168.122.0/24", "192.168.254.0/24"),
		Others:   []netip.Prefix{pfx("192.168.253.0/24")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(moves) != 1 || moves[0].To != pfx("192.168.252.0/24") {
		t.Fatalf("%+v", moves)
	}
}

func TestPlanTwoSubnetsDoNotCollide(t *testing.T) {
	moves, err := Plan(PlanInput{
		Network:  "n",
		Own:      []netip.Prefix{pfx("10.1.0.0/24"), pfx("10.2.0.0/24")},
		Clashing: []netip.Prefix{pfx("10.1.0.0/24"), pfx("10.2.0.0/24")},
		Host:     hostWith("10.0.0.0/8"),
	})
	if err != nil || len(moves) != 2 || moves[0].To == moves[1].To {
		t.Fatalf("%+v %v", moves, err)
	}
}

func TestPlanRemembered(t *testing.T) {
	moves, err := Plan(PlanInput{
		Network:    "n",
		Own:        []netip.Prefix{pfx("192.168.122.0/24")},
		Clashing:   []netip.Prefix{pfx("192.168.122.0/24")},
		Host:       hostWith("192.168.122.0/24"),
		Remembered: func(netip.Prefix) []netip.Prefix { return []netip.Prefix{pfx("192.168.77.0/24")} },
	})
	if err != nil || moves[0].To != pfx("192.168.77.0/24") {
		t.Fatalf("%+v %v", moves, err)
	}
}

func TestPlanExplicitTargets(t *testing.T) {
	in := PlanInput{
		Network: "n",
		Own:     []netip.Prefix{pfx("192.168.122.0/24")},
		Host:    hostWith("10.0.0.0/16"),
		Targets: []netip.Prefix{pfx("10.5.0.0/24")},
	}
	moves, err := Plan(in)
	if err != nil || len(moves) != 1 || moves[0].To != pfx("10.5.0.0/24") {
		t.Fatalf("%+v %v", moves, err)
	}
	in.Targets = []netip.Prefix{pfx("10.0.3.0/24")} // inside a host route
	if _, err := Plan(in); err == nil {
		t.Fatal("an occupied explicit target was accepted")
	}
	in.Targets = []netip.Prefix{pfx("fd00::/64")}
	if _, err := Plan(in); err == nil {
		t.Fatal("a target of a family the network lacks was accepted")
	}
}

func TestPlanNothingFree(t *testing.T) {
	_, err := Plan(PlanInput{
		Network:  "n",
		Own:      []netip.Prefix{pfx("192.168.122.0/24")},
		Clashing: []netip.Prefix{pfx("192.168.122.0/24")},
		Host:     hostWith("192.168.0.0/16", "10.0.0.0/8", "172.16.0.0/12"),
	})
	if !errors.Is(err, ErrNoPlan) {
		t.Fatalf("want ErrNoPlan, got %v", err)
	}
}

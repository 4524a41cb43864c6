package conflict

import (
	"errors"
	"net/netip"
	"testing"
)

func TestPlanTwoSubnetsDoNotCollide(t *testing.T) {
	// Both IPv4 subnets of the network clash with a VPN route; the second
	// must not take the first one's new home.
	host := NewIndex(HostView{Routes: []HostRoute{{Dst: pfx("192.168.100.0/23"), Interface: "wg0", Table: 51820}}})
	n := Network{Name: "lab", Bridge: "virbr3", Subnets: []netip.Prefix{pfx("192.168.100.0/24"), pfx("192.168.101.0/24"), pfx("192.168.5.0/24")}}
	found := host.Check(n)
	if len(found) != 2 {
		t.Fatalf("conflicts: %+v", found)
	}
	plan, err := PlanRenumber(NewOccupied(host, nil, nil), n, found, nil, Down, nil, testULA, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []Move{{pfx("192.168.100.0/24"), pfx("192.168.254.0/24")}, {pfx("192.168.101.0/24"), pfx("192.168.253.0/24")}}
	if plan.Network != "lab" || len(plan.Moves) != 2 || plan.Moves[0] != want[0] || plan.Moves[1] != want[1] {
		t.Fatalf("plan %+v, want %+v", plan, want)
	}
}

func TestPlanAvoidsOwnStayingSubnetAndOthers(t *testing.T) {
	host := NewIndex(HostView{Addresses: []HostAddress{{Prefix: pfx("192.168.254.9/24"), Interface: "wlan0"}}})
	n := Network{Name: "x", Subnets: []netip.Prefix{pfx("192.168.254.0/24"), pfx("192.168.253.0/24")}}
	occ := NewOccupied(host, []netip.Prefix{pfx("192.168.252.0/24")}, []netip.Prefix{pfx("192.168.251.0/24")})
	plan, err := PlanRenumber(occ, n, host.Check(n), nil, Down, nil, testULA, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Moves) != 1 || plan.Moves[0].To != pfx("192.168.250.0/24") {
		t.Fatalf("%+v", plan)
	}
}

func TestPlanRememberedAndDualStack(t *testing.T) {
	g := testULA
	host := NewIndex(HostView{Routes: []HostRoute{
		{Dst: pfx("192.168.122.0/24"), Interface: "wlan0", Table: 254},
		{Dst: g.Subnet(ULASubnetID("default")), Interface: "wlan0", Table: 254},
	}})
	n := Network{Name: "default", Bridge: "virbr0", Subnets: []netip.Prefix{g.Subnet(ULASubnetID("default")), pfx("192.168.122.0/24")}}
	remembered := map[netip.Prefix][]netip.Prefix{pfx("192.168.122.0/24"): {pfx("192.168.7.0/24")}}
	pl := &Planner{Occupied: NewOccupied(host, nil, nil), ULA: g, Direction: Up,
		Remembered: func(p netip.Prefix) []netip.Prefix { return remembered[p] }}
	plan, err := pl.Plan(n, host.Check(n))
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Moves) != 2 || plan.Moves[0].From.Addr().Is4() || plan.Moves[1].To != pfx("192.168.7.0/24") {
		t.Fatalf("moves follow the network's subnet order, remembered first: %+v", plan)
	}
	if to := plan.Moves[0].To; to.Bits() != 64 || !g.Prefix48().Contains(to.Addr()) || to == n.Subnets[0] {
		t.Fatalf("IPv6 move %v", to)
	}
	// IPv6 unusable: no plan, with the reason.
	pl.Usable = map[Family]bool{IPv4: true}
	if _, err := pl.Plan(n, host.Check(n)); !errors.Is(err, ErrNoPlan) || !errors.Is(err, ErrUnusable) {
		t.Fatalf("unusable IPv6: %v", err)
	}
}

func TestPlanEdgeCases(t *testing.T) {
	n := Network{Name: "n", Subnets: []netip.Prefix{pfx("10.0.0.0/24")}}
	plan, err := PlanRenumber(nil, n, nil, nil, Down, nil, testULA, nil)
	if err != nil || len(plan.Moves) != 0 || plan.Network != "n" {
		t.Fatalf("no conflicts: %+v %v", plan, err)
	}
	other := []Conflict{{Network: "m", Subnet: pfx("10.0.0.0/24")}}
	if plan, err := PlanRenumber(nil, n, other, nil, Down, nil, testULA, nil); err != nil || len(plan.Moves) != 0 {
		t.Fatalf("another network's conflicts: %+v %v", plan, err)
	}
	bad := []Conflict{{Network: "n", Subnet: pfx("10.9.0.0/24")}}
	if _, err := PlanRenumber(nil, n, bad, nil, Down, nil, testULA, nil); err == nil {
		t.Fatal("a conflict on a subnet the network lacks must be an error")
	}
	twice := []Conflict{{Network: "n", Subnet: pfx("10.0.0.0/24"), Kind: KindRoute}, {Network: "n", Subnet: pfx("10.0.0.0/24"), Kind: KindAddress}}
	if plan, err := PlanRenumber(nil, n, twice, nil, Up, nil, testULA, nil); err != nil || len(plan.Moves) != 1 || plan.Moves[0].To != pfx("192.168.1.0/24") {
		t.Fatalf("one move per subnet: %+v %v", plan, err)
	}
	full := NewOccupied(nil, []netip.Prefix{pfx("192.168.0.0/16")}, nil)
	if _, err := PlanRenumber(full, n, twice, nil, Up, []Pool{{Prefix: pfx("192.168.0.0/16")}}, testULA, nil); !errors.Is(err, ErrNoPlan) || !errors.Is(err, ErrExhausted) {
		t.Fatalf("exhausted: %v", err)
	}
}

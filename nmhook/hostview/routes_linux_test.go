package hostview

import (
	"cmp"
	"net/netip"
	"slices"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/vnetguard/vnetguard/conflict"
)

// The raw route reader sees exactly what netlink's full decoder sees, on
// this namespace's real routes (read only), and keep drops only what it
// rejects.
func TestDumpRoutesAgreesWithNetlink(t *testing.T) {
	links, err := netlink.LinkList()
	if err != nil {
		t.Skipf("no netlink here: %v", err)
	}
	names := map[int]string{}
	for _, l := range links {
		names[l.Attrs().Index] = l.Attrs().Name
	}
	lib, err := netlink.RouteListFiltered(unix.AF_UNSPEC, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	if err != nil {
		t.Fatal(err)
	}
	want := Convert(names, nil, lib).Routes
	got, skipped, err := dumpRoutes(names, nil)
	if err != nil || skipped != 0 {
		t.Fatalf("dump: %v, skipped %d", err, skipped)
	}
	order := func(a, b conflict.HostRoute) int {
		return cmp.Or(a.Dst.Addr().Compare(b.Dst.Addr()), cmp.Compare(a.Dst.Bits(), b.Dst.Bits()),
			cmp.Compare(a.Table, b.Table), cmp.Compare(a.Interface, b.Interface), cmp.Compare(a.Type, b.Type))
	}
	slices.SortFunc(want, order)
	slices.SortFunc(got, order)
	if !slices.Equal(got, want) {
		t.Fatalf("raw reader:\n%v\nnetlink:\n%v", got, want)
	}
	if len(got) == 0 {
		t.Skip("this namespace has no routes to compare")
	}
	first := got[0].Dst
	kept, skipped, err := dumpRoutes(names, func(p netip.Prefix) bool { return p == first })
	if err != nil || skipped == 0 && len(got) > 1 || len(kept) == 0 {
		t.Fatalf("keep: kept %d, skipped %d of %d, %v", len(kept), skipped, len(got), err)
	}
}

func TestWalkAttrsStopsOnGarbage(t *testing.T) {
	n := 0
	WalkAttrs([]byte{0xff, 0xff, 1, 0, 1, 2}, func(uint16, []byte) { n++ })
	WalkAttrs([]byte{2, 0}, func(uint16, []byte) { n++ })
	if n != 0 {
		t.Fatalf("%d attributes read from garbage", n)
	}
}

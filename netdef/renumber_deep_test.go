package netdef

import (
	"net/netip"
	"runtime"
	"strings"
	"testing"
)

// A definition with deep, long-named unknown elements renumbers at a cost
// linear in its size: elements deeper than any address-holding one are not
// even named (before, each one's whole path was built: 35 s for 4 MiB).
func TestRenumberDeepLongNamesIsLinear(t *testing.T) {
	name := "x" + strings.Repeat("y", 8<<10)
	var b strings.Builder
	b.WriteString("<network><name>n</name><ip address='192.168.122.1' prefix='24'/><metadata>")
	for range 200 {
		b.WriteString("<" + name + ">")
	}
	for range 200 {
		b.WriteString("</" + name + ">")
	}
	b.WriteString("</metadata></network>")
	d, err := Parse([]byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	out, _, err := d.Renumber([]Move{{From: netip.MustParsePrefix("192.168.122.0/24"), To: netip.MustParsePrefix("10.9.8.0/24")}})
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "address='10.9.8.1'") {
		t.Fatal("not renumbered")
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<20 {
		t.Fatalf("renumbering a %d KB document allocated %d MB", b.Len()>>10, alloc>>20)
	}
}

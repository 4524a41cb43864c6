package backend

import (
	"net/netip"
	"reflect"
	"testing"
)

func TestMovesBetween(t *testing.T) {
	old := `<network><name>n</name><ip address='192.168.122.1' prefix='24'/><ip family='ipv6' address='fd00:1::1' prefix='64'/><ip address='10.0.0.1' prefix='24'/></network>`
	moved := `<network><name>n</name><ip address='192.168.121.1' prefix='24'/><ip family='ipv6' address='fd00:1::1' prefix='64'/><ip address='10.0.1.1' prefix='24'/></network>`
	p := netip.MustParsePrefix
	want := []Move{{From: p("192.168.122.0/24"), To: p("192.168.121.0/24")}, {From: p("10.0.0.0/24"), To: p("10.0.1.0/24")}}
	if got := MovesBetween([]byte(old), []byte(moved)); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if got := MovesBetween([]byte(old), []byte(old)); len(got) != 0 {
		t.Fatalf("no change gave %v", got)
	}
	if got := MovesBetween([]byte("<network"), []byte(moved)); got != nil {
		t.Fatalf("broken XML gave %v", got)
	}
}

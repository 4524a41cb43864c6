package conflict

import (
	"bytes"
	"net/netip"
	"os"
	"reflect"
	"strings"
	"testing"
)

func TestHostStateRoundTrip(t *testing.T) {
	h := HostView{
		Addresses: []HostAddress{{Prefix: pfx("192.168.1.5/24"), Interface: "eth0", Scope: "global"}},
		Routes:    []HostRoute{{Dst: pfx("10.0.0.0/8"), Interface: "wg0", Table: 51820, Gateway: netip.MustParseAddr("10.9.0.1"), Protocol: "static"}, {Dst: pfx("fd00::/8"), Table: 254}},
	}
	b, err := MarshalHostState(h)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseHostState(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(back.Routes) != 2 || back.Routes[0] != h.Routes[0] || back.Routes[1] != h.Routes[1] || back.Addresses[0] != h.Addresses[0] {
		t.Fatalf("round trip: %+v", back)
	}
}

func TestParseHostStateErrors(t *testing.T) {
	for _, bad := range []string{
		`{"addresses":[{"prefix":"192.168.1.5"}]}`,
		`{"routes":[{"dst":"10.0.0.0/8"},{"dst":"nope"}]}`,
		`{"routes":[{"dst":"10.0.0.0/8","gateway":"fd00::1"}]}`,
		`{"addresses":[],"unknown":1}`,
		`{"addresses":[]} {"again":1}`,
		`[]`,
		`null`,
		``,
		`{"routes":[{"dst":"10.0.0.0/8","table":-1}]}`,
		`{"routes":[{"dst":"10.0.0.0/8","table":4294967296}]}`,
		`{"addresses":[{"prefix":"192.168.1.5/33"}]}`,
	} {
		if _, err := ParseHostState([]byte(bad)); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
	_, err := ParseHostState([]byte(`{"routes":[{"dst":"10.0.0.0/8"},{"dst":"nope"}]}`))
	if err == nil || !strings.Contains(err.Error(), "routes[1]") {
		t.Errorf("error does not name the entry: %v", err)
	}
	v, err := ParseHostState([]byte(`{"routes":[{"dst":"10.1.2.3/8"}]}`))
	if err != nil || v.Routes[0].Dst != pfx("10.0.0.0/8") || v.Routes[0].Table != 254 {
		t.Errorf("route not masked or table not defaulted: %+v %v", v, err)
	}
}

func FuzzParseHostState(f *testing.F) {
	f.Add([]byte(`{"addresses":[{"prefix":"192.168.1.5/24","interface":"eth0"}],"routes":[{"dst":"10.0.0.0/8","table":51820,"gateway":"10.0.0.1"}]}`))
	f.Add([]byte(`{"routes":[{"dst":"fd00::/8","type":"blackhole"}]}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"addresses":[{"prefix":"fe80::1/64","interface":"eth0","scope":"link"}],"routes":[{"dst":"192.168.0.0/16","type":"local","table":255,"gateway":"192.168.0.1","protocol":"kernel","scope":"host","interface":"lo"}]}`))
	if data, err := os.ReadFile("testdata/host-state.json"); err == nil {
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := ParseHostState(data)
		if err != nil {
			return
		}
		b, err := MarshalHostState(v)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		w, err := ParseHostState(b)
		if err != nil {
			t.Fatalf("re-parse of our own output: %v\n%s", err, b)
		}
		if len(w.Addresses) != len(v.Addresses) || len(w.Routes) != len(v.Routes) {
			t.Fatalf("round trip lost entries")
		}
		if !reflect.DeepEqual(v, w) {
			t.Fatalf("round trip changed the view:\n%+v\n%+v", v, w)
		}
		c, err := MarshalHostState(w)
		if err != nil || !bytes.Equal(b, c) {
			t.Fatalf("marshalling is not stable: %v\n%s\n%s", err, b, c)
		}
		NewIndex(v).Check(Network{Name: "x", Subnets: []netip.Prefix{pfx("192.168.122.0/24"), pfx("fd00::/64")}})
	})
}

package netdef

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"reflect"
	"strings"
	"testing"
)

func move(from, to string) Move {
	return Move{From: netip.MustParsePrefix(from), To: netip.MustParsePrefix(to)}
}

func TestRenumberRichIsLossless(t *testing.T) {
	d := mustParseFile(t, "testdata/rich.xml")
	out, notes, err := d.Renumber([]Move{move("192.168.122.0/24", "192.168.200.0/24"), move("fd12:3456:789a:1::/64", "fd99:1:2:3::/64")})
	if err != nil {
		t.Fatal(err)
	}
	if len(notes) != 0 {
		t.Errorf("notes for a same-size move: %v", notes)
	}
	// Every address inside the moved subnets changes and nothing else: the
	// entity-coded static host ip comes out plain.
	want := strings.NewReplacer(
		"192.168.&#49;22.10", "192.168.200.10",
		"192.168.122.", "192.168.200.",
		"fd12:3456:789a:1::", "fd99:1:2:3::",
	).Replace(string(d.Raw))
	if string(out) != want {
		t.Fatalf("output differs from the expected byte-for-byte edit:\n%s", diffLines(want, string(out)))
	}
	// The route to 192.168.222.0/24 is not inside the subnet: untouched,
	// but its gateway was.
	if !bytes.Contains(out, []byte(`<route address="192.168.222.0" prefix="24" gateway="192.168.200.2"/>`)) {
		t.Error("route gateway not moved")
	}
	nd, err := Parse(out)
	if err != nil {
		t.Fatal(err)
	}
	if probs := nd.Validate(); len(probs) != 0 {
		t.Fatal(probs)
	}
	if got := nd.Network.Subnets(); got[0] != netip.MustParsePrefix("192.168.200.0/24") || got[1] != netip.MustParsePrefix("fd99:1:2:3::/64") {
		t.Fatalf("subnets after: %v", got)
	}
	// Everything that is not an address is the same model.
	for _, pair := range [][2]any{
		{d.Network.Metadata, nd.Network.Metadata}, {d.Network.PortGroups, nd.Network.PortGroups},
		{d.Network.Bridge, nd.Network.Bridge}, {d.Network.Forward, nd.Network.Forward},
		{d.Network.Dnsmasq, nd.Network.Dnsmasq}, {d.Network.DNS.TXTs, nd.Network.DNS.TXTs},
		{d.Network.DNS.SRVs, nd.Network.DNS.SRVs}, {d.Network.Bandwidth, nd.Network.Bandwidth},
	} {
		if !reflect.DeepEqual(pair[0], pair[1]) {
			t.Errorf("changed: %+v -> %+v", pair[0], pair[1])
		}
	}
	if p, _ := nd.Policy(); p != Renumber {
		t.Error("policy lost")
	}
}

func TestRenumberOnlyOneFamily(t *testing.T) {
	d := mustParseFile(t, "testdata/rich.xml")
	out, _, err := d.Renumber([]Move{move("fd12:3456:789a:1::/64", "fd99:1:2:3::/64")})
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.ReplaceAll(string(d.Raw), "fd12:3456:789a:1::", "fd99:1:2:3::"); string(out) != want {
		t.Fatalf("IPv4 parts touched:\n%s", diffLines(want, string(out)))
	}
}

func TestRenumberSmallerSubnetClampsRange(t *testing.T) {
	d := mustParseFile(t, "testdata/default.xml")
	out, notes, err := d.Renumber([]Move{move("192.168.122.0/24", "10.7.7.192/26")})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"address='10.7.7.193'", "netmask='255.255.255.192'", "start='10.7.7.194'", "end='10.7.7.254'"} {
		if !bytes.Contains(out, []byte(s)) {
			t.Errorf("missing %s in\n%s", s, out)
		}
	}
	if len(notes) != 1 || !strings.Contains(notes[0], "clamped") {
		t.Errorf("no note about the clamp: %v", notes)
	}
}

func TestRenumberSmallerSubnetRefusesToDropHosts(t *testing.T) {
	d := mustParseFile(t, "testdata/rich.xml")
	// .250 (a static host) has no place in a /25.
	_, _, err := d.Renumber([]Move{move("192.168.122.0/24", "192.168.200.0/25")})
	if err == nil || !strings.Contains(err.Error(), "192.168.122.250") {
		t.Fatalf("want an error naming the static host, got %v", err)
	}
}

func TestRenumberPrefixAttributeAndImpliedSize(t *testing.T) {
	d, _ := Parse([]byte(`<network><name>p</name><ip address="10.1.0.1" prefix="16"/></network>`))
	out, _, err := d.Renumber([]Move{move("10.1.0.0/16", "192.168.40.0/24")})
	if err != nil || string(out) != `<network><name>p</name><ip address="192.168.40.1" prefix="24"/></network>` {
		t.Fatalf("%s %v", out, err)
	}
	// No netmask or prefix: the classful size was implied; the new one is
	// made explicit.
	d, _ = Parse([]byte(`<network><name>c</name><ip address='10.0.0.1'/></network>`))
	out, _, err = d.Renumber([]Move{move("10.0.0.0/8", "192.168.41.0/24")})
	if err != nil || string(out) != `<network><name>c</name><ip address='192.168.41.1' prefix='24'/></network>` {
		t.Fatalf("%s %v", out, err)
	}
}

func TestRenumberRejectsBadMoves(t *testing.T) {
	d := mustParseFile(t, "testdata/rich.xml")
	for _, m := range [][]Move{
		{move("10.0.0.0/24", "10.1.0.0/24")},                                                    // not the network's subnet
		{move("192.168.122.0/24", "fd00::/64")},                                                 // family change
		{move("fd12:3456:789a:1::/64", "192.168.1.0/24")},                                       // family change
		{move("192.168.122.0/24", "10.0.0.0/24"), move("fd12:3456:789a:1::/64", "10.0.0.0/25")}, // family change in the second
	} {
		if _, _, err := d.Renumber(m); err == nil {
			t.Errorf("%v accepted", m)
		}
	}
}

func TestRenumberIdentityIsByteIdentical(t *testing.T) {
	for _, f := range []string{"testdata/default.xml", "testdata/rich.xml"} {
		d := mustParseFile(t, f)
		var moves []Move
		for _, s := range d.Network.Subnets() {
			moves = append(moves, Move{From: s, To: s})
		}
		out, _, err := d.Renumber(moves)
		if err != nil || !bytes.Equal(out, d.Raw) {
			t.Errorf("%s: identity move changed bytes (%v)", f, err)
		}
	}
}

// Property: moving there and back gives the original bytes, and every
// step re-parses into a valid definition with the moved subnets.
func TestRenumberRoundTripProperty(t *testing.T) {
	raw, err := os.ReadFile("testdata/rich.xml")
	if err != nil {
		t.Fatal(err)
	}
	// The entity-coded address comes out plain: start from the plain form.
	raw = bytes.ReplaceAll(raw, []byte("&#49;"), []byte("1"))
	rng := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 300; i++ {
		d, err := Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		to4 := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(rng.IntN(256)), byte(rng.IntN(256)), 0}), 24)
		var a6 [16]byte
		a6[0] = 0xfd
		for j := 1; j < 8; j++ {
			a6[j] = byte(rng.IntN(256))
		}
		to6 := netip.PrefixFrom(netip.AddrFrom16(a6), 64)
		moves := []Move{{From: netip.MustParsePrefix("192.168.122.0/24"), To: to4}, {From: netip.MustParsePrefix("fd12:3456:789a:1::/64"), To: to6}}
		if rng.IntN(3) == 0 {
			moves = moves[:1]
		}
		out, _, err := d.Renumber(moves)
		if err != nil {
			t.Fatalf("move %v: %v", moves, err)
		}
		nd, err := Parse(out)
		if err != nil || len(nd.Validate()) != 0 {
			t.Fatalf("move %v: result invalid: %v %v", moves, err, nd.Validate())
		}
		if got := nd.Network.Subnets()[0]; got != to4 {
			t.Fatalf("subnet %v, want %v", got, to4)
		}
		back := make([]Move, len(moves))
		for j, m := range moves {
			back[j] = Move{From: m.To, To: m.From}
		}
		again, _, err := nd.Renumber(back)
		if err != nil || !bytes.Equal(again, raw) {
			t.Fatalf("move %v and back is not the original (%v):\n%s", moves, err, diffLines(string(raw), string(again)))
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, name := range []string{"testdata/default.xml", "testdata/rich.xml", "testdata/ovs.xml", "testdata/hostdev.xml", "testdata/macvtap.xml"} {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`<network><name>x</name><ip address='10.0.0.1' prefix='8'/></network>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := Parse(data)
		if err != nil {
			return
		}
		probs := d.Validate()
		for _, p := range probs {
			_ = p.Error()
		}
		d.Policy()
		subnets := d.Network.Subnets()
		var identity []Move
		for _, s := range subnets {
			identity = append(identity, Move{From: s, To: s})
		}
		out, _, err := d.Renumber(identity)
		if err == nil && !bytes.Equal(out, d.Raw) {
			t.Fatalf("identity move changed the bytes")
		}
		if len(probs) == 0 && len(subnets) > 0 && subnets[0].Addr().Is4() && subnets[0].Bits() >= 8 {
			to := netip.PrefixFrom(netip.AddrFrom4([4]byte{100, 64, 0, 0}), subnets[0].Bits()).Masked()
			if out, _, err := d.Renumber([]Move{{From: subnets[0], To: to}}); err == nil {
				if nd, err := Parse(out); err != nil || len(nd.Validate()) != 0 {
					t.Fatalf("renumbered output invalid: %v", err)
				}
			}
		}
	})
}

// diffLines shows the lines that differ, for readable failures.
func diffLines(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for i := 0; i < max(len(w), len(g)); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&b, "line %d:\n  want %q\n  got  %q\n", i+1, wl, gl)
		}
	}
	return b.String()
}

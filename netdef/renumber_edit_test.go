package netdef

import (
	"strings"
	"testing"
)

// edit is one expected change: old must occur exactly once in the input.
type edit struct{ old, new string }

func applyEdits(t *testing.T, raw string, edits []edit) string {
	t.Helper()
	for _, e := range edits {
		if n := strings.Count(raw, e.old); n != 1 {
			t.Fatalf("expected edit %q occurs %d times in the input", e.old, n)
		}
		raw = strings.Replace(raw, e.old, e.new, 1)
	}
	return raw
}

// Shrinking /24 to /26: prefix rewritten in the netmask spelling the file
// uses, the range clamped around the bridge address, a note for it, host
// parts kept for everything that fits, nothing else touched.
func TestRenumberShrinkExactBytes(t *testing.T) {
	const in = `<network>
  <!-- shrink me -->
  <name>s</name>
  <forward mode="nat"/>
  <dns><host ip="192.168.122.20"><hostname>a</hostname></host><forwarder addr='192.168.122.1'/></dns>
  <ip address='192.168.122.1'   netmask="255.255.255.0">
    <dhcp>
      <range start='192.168.122.100' end='192.168.122.200'/>
      <host mac='52:54:00:00:00:09' ip='192.168.122.9'/>
    </dhcp>
  </ip>
  <route address='192.168.122.32' prefix='27' gateway='192.168.122.9'/>
  <route address='10.0.0.0' prefix='8' gateway='192.168.122.9'/>
</network>
`
	d, err := Parse([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	out, notes, err := d.Renumber([]Move{move("192.168.122.0/24", "10.9.8.0/26")})
	if err != nil {
		t.Fatal(err)
	}
	want := applyEdits(t, in, []edit{
		{`ip="192.168.122.20"`, `ip="10.9.8.20"`},
		{`addr='192.168.122.1'`, `addr='10.9.8.1'`},
		{`address='192.168.122.1'   netmask="255.255.255.0"`, `address='10.9.8.1'   netmask="255.255.255.192"`},
		{`start='192.168.122.100' end='192.168.122.200'`, `start='10.9.8.2' end='10.9.8.62'`},
		{`ip='192.168.122.9'`, `ip='10.9.8.9'`},
		{`address='192.168.122.32' prefix='27' gateway='192.168.122.9'`, `address='10.9.8.32' prefix='27' gateway='10.9.8.9'`},
		{`prefix='8' gateway='192.168.122.9'`, `prefix='8' gateway='10.9.8.9'`},
	})
	if string(out) != want {
		t.Fatalf("output differs:\n%s", diffLines(want, string(out)))
	}
	if len(notes) != 1 || !strings.Contains(notes[0], "clamped to 10.9.8.2-10.9.8.62") {
		t.Errorf("notes: %q", notes)
	}
}

func TestRenumberIPv6PrefixChange(t *testing.T) {
	const in = `<network><name>v6</name>
<ip family="ipv6" address="fd00:aa:bb:1::1" prefix="64"><dhcp><range start="fd00:aa:bb:1::100" end="fd00:aa:bb:1::1ff"/><host id="0:1" ip="fd00:aa:bb:1::10"/></dhcp></ip>
<route family="ipv6" address="2001:db8::" prefix="48" gateway="fd00:aa:bb:1::2"/>
</network>`
	d, err := Parse([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	out, notes, err := d.Renumber([]Move{move("fd00:aa:bb:1::/64", "fd42:1:2:300::/56")})
	if err != nil || len(notes) != 0 {
		t.Fatal(err, notes)
	}
	want := applyEdits(t, in, []edit{
		{`address="fd00:aa:bb:1::1" prefix="64"`, `address="fd42:1:2:300::1" prefix="56"`},
		{`start="fd00:aa:bb:1::100" end="fd00:aa:bb:1::1ff"`, `start="fd42:1:2:300::100" end="fd42:1:2:300::1ff"`},
		{`ip="fd00:aa:bb:1::10"`, `ip="fd42:1:2:300::10"`},
		{`gateway="fd00:aa:bb:1::2"`, `gateway="fd42:1:2:300::2"`},
	})
	if string(out) != want {
		t.Fatalf("output differs:\n%s", diffLines(want, string(out)))
	}
}

func TestRenumberGrowKeepsHostParts(t *testing.T) {
	d := mustParseFile(t, "testdata/default.xml")
	out, notes, err := d.Renumber([]Move{move("192.168.122.0/24", "172.20.0.0/16")})
	if err != nil || len(notes) != 0 {
		t.Fatal(err, notes)
	}
	want := applyEdits(t, string(d.Raw), []edit{
		{`address='192.168.122.1' netmask='255.255.255.0'`, `address='172.20.0.1' netmask='255.255.0.0'`},
		{`start='192.168.122.2' end='192.168.122.254'`, `start='172.20.0.2' end='172.20.0.254'`},
	})
	if string(out) != want {
		t.Fatalf("output differs:\n%s", diffLines(want, string(out)))
	}
}

func TestRenumberErrors(t *testing.T) {
	cases := []struct {
		name, xml string
		moves     []Move
		want      string
	}{
		{"route wider than the new subnet",
			`<network><name>r</name><ip address='10.1.1.1' prefix='24'/><route address='10.1.1.0' prefix='25' gateway='10.1.1.2'/></network>`,
			[]Move{move("10.1.1.0/24", "10.2.2.0/26")}, "wider than"},
		{"dns host does not fit",
			`<network><name>r</name><dns><host ip='10.1.1.200'><hostname>h</hostname></host></dns><ip address='10.1.1.1' prefix='24'/></network>`,
			[]Move{move("10.1.1.0/24", "10.2.2.0/25")}, "DNS host 10.1.1.200"},
		{"bridge address does not fit",
			`<network><name>r</name><ip address='10.1.1.254' prefix='24'/></network>`,
			[]Move{move("10.1.1.0/24", "10.2.2.0/25")}, "bridge address"},
		{"overlaps the other subnet",
			`<network><name>r</name><ip address='10.1.1.1' prefix='24'/><ip address='10.1.2.1' prefix='24'/></network>`,
			[]Move{move("10.1.1.0/24", "10.1.0.0/22")}, "overlaps the network's other subnet"},
		{"two moves onto one place",
			`<network><name>r</name><ip address='10.1.1.1' prefix='24'/><ip address='10.1.2.1' prefix='24'/></network>`,
			[]Move{move("10.1.1.0/24", "10.9.0.0/24"), move("10.1.2.0/24", "10.9.0.0/25")}, "cannot both move"},
		{"range has no room at all",
			`<network><name>r</name><ip address='10.1.1.1' prefix='24'><dhcp><range start='10.1.1.100' end='10.1.1.101'/></dhcp></ip></network>`,
			[]Move{move("10.1.1.0/24", "10.2.2.0/31")}, "no place"},
	}
	for _, c := range cases {
		d, err := Parse([]byte(c.xml))
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := d.Renumber(c.moves); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error containing %q", c.name, err, c.want)
		}
	}
	// Swapping two subnets is fine: each moves away from the other.
	d, _ := Parse([]byte(`<network><name>r</name><ip address='10.1.1.1' prefix='24'/><ip address='10.1.2.1' prefix='24'/></network>`))
	out, _, err := d.Renumber([]Move{move("10.1.1.0/24", "10.1.2.0/24"), move("10.1.2.0/24", "10.1.1.0/24")})
	if err != nil || string(out) != `<network><name>r</name><ip address='10.1.2.1' prefix='24'/><ip address='10.1.1.1' prefix='24'/></network>` {
		t.Errorf("swap: %s %v", out, err)
	}
}

// A definition that is already broken elsewhere can still be moved, as
// long as the move breaks nothing new.
func TestRenumberToleratesOldProblems(t *testing.T) {
	d, _ := Parse([]byte(`<network><name>r</name><mtu size='0'/><ip address='10.1.1.1' prefix='24'/></network>`))
	if len(d.Validate()) != 1 {
		t.Fatal("fixture should have one problem")
	}
	if _, _, err := d.Renumber([]Move{move("10.1.1.0/24", "10.2.2.0/24")}); err != nil {
		t.Fatal(err)
	}
}

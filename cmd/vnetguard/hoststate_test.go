package main

import (
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/vnetguard/vnetguard/conflict"
	"github.com/vnetguard/vnetguard/nmhook/hostview"
)

// Issue 8 item 8: what `vnetguard host-state` writes is what --host-state
// reads, and it is the live view.
func TestHostStateRoundTripsTheLiveView(t *testing.T) {
	path := filepath.Join(t.TempDir(), "host.json")
	var saved, live conflict.HostView
	// The host may change between the two reads (a DHCP renewal): retry.
	for try := 0; ; try++ {
		code, out, errs := runCLI(t, "host-state", "--output", path)
		if code != exitOK || out != "" {
			t.Fatalf("host-state: exit %d, out %q, err %q", code, out, errs)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if saved, err = conflict.ParseHostState(b); err != nil {
			t.Fatalf("saved state does not read back: %v\n%s", err, b)
		}
		if live, err = hostview.Read(); err != nil {
			t.Fatal(err)
		}
		if reflect.DeepEqual(saved, live) {
			break
		}
		if try == 2 {
			t.Fatalf("saved view differs from the live one:\nsaved %+v\nlive  %+v", saved, live)
		}
	}
	if len(live.Addresses) == 0 {
		t.Fatal("the live view has no address at all (not even lo's): nothing was compared")
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("saved file mode: %v %v, want 0600", fi.Mode(), err)
	}
	// On stdout, the same bytes; and check reads it.
	_, out, _ := runCLI(t, "host-state")
	if v, err := conflict.ParseHostState([]byte(out)); err != nil || len(v.Addresses) != len(saved.Addresses) {
		t.Errorf("stdout: %v", err)
	}
	if code, _, errs := runCLI(t, "check", "--host-state", path, "--network", "testdata/dual.xml"); code == exitError {
		t.Errorf("check --host-state on a saved state: %s", errs)
	}
	if code, _, _ := runCLI(t, "host-state", "extra"); code != exitError {
		t.Errorf("extra argument: exit %d", code)
	}
}

// Every field the format has survives a save and a read.
func TestSaveHostStateKeepsEveryField(t *testing.T) {
	view := conflict.HostView{
		Addresses: []conflict.HostAddress{
			{Prefix: netip.MustParsePrefix("192.168.122.57/24"), Interface: "wlp2s0", Scope: "global"},
			{Prefix: netip.MustParsePrefix("fe80::1/64"), Interface: "wlp2s0", Scope: "link"},
		},
		Routes: []conflict.HostRoute{
			{Dst: netip.MustParsePrefix("0.0.0.0/0"), Interface: "wlp2s0", Table: 254, Gateway: netip.MustParseAddr("192.168.122.254"), Protocol: "dhcp"},
			{Dst: netip.MustParsePrefix("10.77.0.0/16"), Interface: "wg0", Table: 51820, Type: "unicast", Scope: "link", Protocol: "static"},
			{Dst: netip.MustParsePrefix("10.66.0.0/16"), Table: 4294967295, Type: "blackhole"},
			{Dst: netip.MustParsePrefix("fd00:1::/64"), Interface: "tun0", Table: 255, Type: "local", Gateway: netip.MustParseAddr("fd00::1")},
		},
	}
	var buf bytes.Buffer
	if err := saveHostState(&buf, "", view); err != nil {
		t.Fatal(err)
	}
	got, err := conflict.ParseHostState(buf.Bytes())
	if err != nil || !reflect.DeepEqual(got, view) {
		t.Fatalf("round trip: %v\n got %+v\nwant %+v", err, got, view)
	}
	// An empty host is [] and [], not null.
	buf.Reset()
	saveHostState(&buf, "-", conflict.HostView{})
	if !strings.Contains(buf.String(), `"addresses": []`) {
		t.Errorf("empty view: %s", buf.String())
	}
}

// The format is documented where the flag is.
func TestHostStateFormatDocumented(t *testing.T) {
	for _, cmd := range []string{"check", "host-state"} {
		_, out, _ := runCLI(t, cmd, "--help")
		for _, key := range []string{`"addresses"`, `"routes"`, `"prefix"`, `"dst"`, `"table"`, `"gateway"`, "254"} {
			if !strings.Contains(out, key) {
				t.Errorf("%s --help does not document %s", cmd, key)
			}
		}
	}
}

package config

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vnetguard/vnetguard/conflict"
	"github.com/vnetguard/vnetguard/netdef"
)

func TestParseFull(t *testing.T) {
	c, err := Parse([]byte(`# vnetguard configuration
[main]
default-policy=renumber
ipv6=false
hypervisor=no
ignore=lab;test-net;
reserve=10.99.0.0/16;192.168.7.0/24

[pools]
ipv4=10.200.0.0/16:24;172.20.0.0/14:26

[watch]
debounce=150ms
damping-window=30s
`))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		DefaultPolicy: netdef.Renumber, IPv6: false, Hypervisor: "no",
		Ignore:   []string{"lab", "test-net"},
		Reserved: []netip.Prefix{netip.MustParsePrefix("10.99.0.0/16"), netip.MustParsePrefix("192.168.7.0/24")},
		Pools4:   []conflict.Pool{{Prefix: netip.MustParsePrefix("10.200.0.0/16"), Bits: 24}, {Prefix: netip.MustParsePrefix("172.20.0.0/14"), Bits: 26}},
		Debounce: 150 * time.Millisecond, DampingWindow: 30 * time.Second,
	}
	if c.DefaultPolicy != want.DefaultPolicy || c.IPv6 != want.IPv6 || c.Hypervisor != want.Hypervisor ||
		strings.Join(c.Ignore, ",") != "lab,test-net" || len(c.Reserved) != 2 || c.Reserved[1] != want.Reserved[1] ||
		len(c.Pools4) != 2 || c.Pools4[1].Prefix != want.Pools4[1].Prefix || c.Pools4[1].Bits != want.Pools4[1].Bits || c.Debounce != want.Debounce || c.DampingWindow != want.DampingWindow {
		t.Fatalf("got %+v\nwant %+v", c, want)
	}
}

func TestEmptyAndMissingGiveDefaults(t *testing.T) {
	c, err := Parse(nil)
	if err != nil || c.DefaultPolicy != netdef.Destroy || !c.IPv6 || c.DampingWindow != 10*time.Second {
		t.Fatalf("defaults: %+v %v", c, err)
	}
	c, err = Load(filepath.Join(t.TempDir(), "none.conf"))
	if err != nil || c.DefaultPolicy != netdef.Destroy {
		t.Fatalf("missing file: %+v %v", c, err)
	}
}

func TestRejectsMistakes(t *testing.T) {
	for _, bad := range []string{
		"[main]\ndefault-policy=explode\n",
		"[main]\ndefualt-policy=warn\n",
		"[mian]\nipv6=true\n",
		"[main]\nipv6=perhaps\n",
		"[main]\nreserve=10.0.0.0/33\n",
		"[pools]\nipv4=10.0.0.0/8\n",
		"[pools]\nipv4=10.0.0.0/16:8\n",
		"[pools]\nipv4=fd00::/8:64\n",
		"[watch]\ndebounce=forever\n",
		"[watch]\ndamping-window=-1s\n",
		"stray=1\n",
	} {
		if _, err := Parse([]byte(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
	p := filepath.Join(t.TempDir(), "v.conf")
	os.WriteFile(p, []byte("[main]\nipv6=maybe\n"), 0o644)
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), p) {
		t.Errorf("error does not name the file: %v", err)
	}
}

// The shipped example, with every commented key switched on, must parse:
// it documents the format.
func TestShippedExampleParses(t *testing.T) {
	b, err := os.ReadFile("../../packaging/config/vnetguard.conf")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Parse(b); err != nil {
		t.Fatalf("as shipped: %v", err)
	}
	var on []string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "#") && strings.Contains(line, "=") && !strings.Contains(line, " ") {
			line = strings.TrimPrefix(line, "#")
		}
		on = append(on, line)
	}
	c, err := Parse([]byte(strings.Join(on, "\n")))
	if err != nil {
		t.Fatalf("with every key on: %v", err)
	}
	if len(c.Pools4) != 3 || c.DampingWindow != 10*time.Second {
		t.Fatalf("example values not read: %+v", c)
	}
}

package state

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"
)

func TestWriteFileAtomicReplacesAndLeavesNoTemp(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "sub", "f.json")
	for _, content := range []string{"one", "two"} {
		if err := WriteFileAtomic(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		got, _ := os.ReadFile(p)
		if string(got) != content {
			t.Fatalf("got %q want %q", got, content)
		}
	}
	entries, _ := os.ReadDir(filepath.Dir(p))
	if len(entries) != 1 {
		t.Fatalf("temporary files left behind: %v", entries)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode())
	}
}

func TestULACreatedOnceThenReused(t *testing.T) {
	dir := t.TempDir()
	a, err := LoadOrCreateULA(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := LoadOrCreateULA(dir)
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Fatalf("global ID changed between runs: %v vs %v", a, b)
	}
	if p := a.Prefix48(); p.Bits() != 48 || p.Addr().As16()[0] != 0xfd {
		t.Fatalf("not a ULA /48: %v", p)
	}
	c, err := LoadOrCreateULA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if c == a {
		t.Fatalf("two hosts drew the same random global ID %v", a)
	}
}

func TestULACorruptFileKept(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, ULAFile)
	os.WriteFile(p, []byte("garbage\n"), 0o644)
	if _, err := LoadOrCreateULA(dir); err == nil {
		t.Fatal("corrupt ULA file accepted")
	}
	if b, _ := os.ReadFile(p); string(b) != "garbage\n" {
		t.Fatalf("corrupt file overwritten: %q", b)
	}
}

func TestParseULA(t *testing.T) {
	for _, s := range []string{"fd12:3456:789a::/48", "123456789a"} {
		id, err := ParseULA(s)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		if got := id.Prefix48().String(); got != "fd12:3456:789a::/48" {
			t.Fatalf("%s -> %s", s, got)
		}
	}
	for _, s := range []string{"fd12:3456:789a::/56", "2001:db8::/48", "xyz", ""} {
		if _, err := ParseULA(s); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
}

func TestMemoryRoundTripAndOrder(t *testing.T) {
	dir := t.TempDir()
	m, err := LoadMemory(dir)
	if err != nil {
		t.Fatal(err)
	}
	def := netip.MustParsePrefix("192.168.122.0/24")
	for _, s := range []string{"192.168.254.0/24", "192.168.253.0/24", "192.168.254.0/24"} {
		m.Remember("default", def, netip.MustParsePrefix(s))
	}
	m.Record("default", Action{Action: "renumber", Cause: "test"})
	if err := m.Save(dir); err != nil {
		t.Fatal(err)
	}
	m2, err := LoadMemory(dir)
	if err != nil {
		t.Fatal(err)
	}
	got := m2.Remembered("default", def)
	want := []netip.Prefix{netip.MustParsePrefix("192.168.254.0/24"), netip.MustParsePrefix("192.168.253.0/24")}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("remembered %v want %v", got, want)
	}
	if m2.Networks["default"].LastAction.Action != "renumber" {
		t.Fatalf("last action lost")
	}
	for i := 0; i < 10; i++ {
		m2.Remember("default", def, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, byte(i), 0}), 24))
	}
	if n := len(m2.Remembered("default", def)); n != rememberDepth {
		t.Fatalf("kept %d choices, want %d", n, rememberDepth)
	}
}

func TestMemoryCorruptIsAnError(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, MemoryFile), []byte("{not json"), 0o644)
	if _, err := LoadMemory(dir); err == nil {
		t.Fatal("corrupt memory accepted")
	}
}

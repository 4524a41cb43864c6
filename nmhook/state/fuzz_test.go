package state

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// The state files' invariants, whatever a file holds: never a panic;
// what loads saves and loads again to the same value; what does not load
// is an error, never a silently empty state where a file existed; and a
// corrupt file is never overwritten by a load.

func FuzzLoadMemory(f *testing.F) {
	for _, s := range []string{
		`{"networks":{"default":{"moves":{"192.168.122.0/24":["192.168.254.0/24","192.168.253.0/24"]},` +
			`"last_action":{"time":"2024-01-02T03:04:05.5+01:00","action":"renumber","cause":"wlp2s0","moves":["192.168.122.0/24 -> 192.168.254.0/24"],"left":["192.168.122.0/24"]}}}}`,
		`{"networks":{"x":null,"y":{}}}`, `{}`, `{"networks":null}`, `null`, `[]`, `{not json`, `{"networks":{"a":{"moves":{"fd00::/64":[""]}}}}`,
	} {
		f.Add([]byte(s))
	}
	dir := f.TempDir() // one per worker process; inputs run one at a time
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, MemoryFile)
		if err := os.WriteFile(path, data, FileMode); err != nil {
			t.Fatal(err)
		}
		m, err := LoadMemory(dir)
		if m == nil || m.Networks == nil {
			t.Fatalf("LoadMemory returned no usable memory (err %v)", err)
		}
		if after, _ := os.ReadFile(path); !bytes.Equal(after, data) {
			t.Fatal("loading changed the file")
		}
		if err != nil {
			if len(m.Networks) != 0 {
				t.Fatalf("an error (%v) came with remembered networks", err)
			}
			return
		}
		if !isObject(data) {
			t.Fatal("accepted a memory file that is not a JSON object")
		}
		// Save writes m.encode() and LoadMemory reads with parseMemory:
		// the round trip without Save's fsyncs, which would slow fuzzing
		// a hundredfold (TestMemoryRoundTripAndOrder goes through files).
		b, err := m.encode()
		if err != nil {
			t.Fatalf("a loaded memory does not save: %v", err)
		}
		m2, err := parseMemory(b)
		if err != nil {
			t.Fatalf("a saved memory does not load: %v\n%s", err, b)
		}
		sameJSON(t, m, m2)
	})
}

// fuzzIntent has the shape of a backend's intent record: scalars, a
// time, XML strings, lists of records.
type fuzzIntent struct {
	Version int       `json:"version"`
	Network string    `json:"network"`
	Started time.Time `json:"started"`
	OldXML  string    `json:"old_xml"`
	Target  string    `json:"target"`
	Ports   []struct {
		UUID string `json:"uuid"`
		XML  string `json:"xml"`
	} `json:"ports"`
	Taps []string `json:"taps"`
}

func FuzzIntents(f *testing.F) {
	f.Add("libvirt:default", []byte(`{"version":1,"network":"default","started":"2024-01-02T03:04:05Z","old_xml":"<network/>","target":"new","ports":[{"uuid":"u","xml":"<networkport/>"}],"taps":["vnet0"]}`))
	f.Add("libvirt:a/b", []byte(`{}`))
	f.Add(".hidden", []byte(`null`))
	f.Add("libvirt:x", []byte(`{"version":"one"}`))
	f.Add("libvirt:%zz", []byte(``))
	base := f.TempDir()
	f.Fuzz(func(t *testing.T, key string, data []byte) {
		s := Intents{Dir: filepath.Join(base, "in")}
		again := Intents{Dir: filepath.Join(base, "again")}
		for _, d := range []string{s.Dir, again.Dir} {
			if err := os.RemoveAll(d); err != nil {
				t.Fatal(err)
			}
		}
		if err := EnsurePrivateDir(s.Dir); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(s.path(key), data, FileMode); err != nil {
			t.Skip("no such file name:", err) // too long, or a NUL
		}
		var in fuzzIntent
		ok, err := s.Get(key, &in)
		if err != nil {
			if ok {
				t.Fatalf("Get reported both a record and an error: %v", err)
			}
			return
		}
		if !ok {
			t.Fatal("Get found nothing where a record exists")
		}
		if !isObject(data) {
			t.Fatal("accepted an intent that is not a JSON object")
		}
		if err := again.Put(key, in); err != nil {
			t.Fatalf("a record read does not write back: %v", err)
		}
		var in2 fuzzIntent
		if ok, err := again.Get(key, &in2); !ok || err != nil {
			t.Fatalf("a record written does not read back: %v %v", ok, err)
		}
		sameJSON(t, in, in2)
		if keys, err := again.Keys(""); err != nil || !slices.Equal(keys, []string{key}) {
			t.Fatalf("Keys = %q, %v; want [%q]", keys, err, key)
		}
	})
}

func FuzzULA(f *testing.F) {
	for _, s := range []string{"fd12:3456:789a::/48\n", "123456789a", "FD12:3456:789A::/48", "fd12:3456:789a:1::/48",
		"fd12:3456:789a::/56", "2001:db8::/48", "", "  fd00::/48  \n\n", "garbage", "fd12:3456:789a::%eth0/48"} {
		f.Add(s)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, s string) {
		if id, err := ParseULA(s); err == nil {
			back, err := ParseULA(id.Prefix48().String())
			if err != nil || back != id {
				t.Fatalf("%q -> %v -> %v (%v)", s, id.Prefix48(), back, err)
			}
			if back, err := ParseULA(hex.EncodeToString(id[:])); err != nil || back != id {
				t.Fatalf("%q: the hex form does not read back: %v (%v)", s, back, err)
			}
		}
		path := filepath.Join(dir, ULAFile)
		if err := os.WriteFile(path, []byte(s), FileMode); err != nil {
			t.Fatal(err)
		}
		id, err := LoadOrCreateULA(dir)
		if after, _ := os.ReadFile(path); string(after) != s {
			t.Fatalf("loading changed the file (err %v)", err)
		}
		want, perr := ParseULA(strings.TrimSpace(s))
		if err != nil {
			var bad *BadULAError
			if !errors.As(err, &bad) || !strings.Contains(err.Error(), "remove "+path) {
				t.Fatalf("a corrupt ULA file gave %v, want a BadULAError saying how to recover", err)
			}
			if perr == nil && len(s) <= maxULASize {
				t.Fatalf("a valid ULA file refused: %v", err)
			}
			return
		}
		if perr != nil || id != want {
			t.Fatalf("LoadOrCreateULA = %v, ParseULA = %v, %v", id, want, perr)
		}
	})
}

func isObject(data []byte) bool {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	return len(trimmed) > 0 && trimmed[0] == '{'
}

// sameJSON fails unless a and b encode alike (times compare by instant
// and offset, not by *time.Location).
func sameJSON(t *testing.T, a, b any) {
	t.Helper()
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	if err1 != nil || err2 != nil || !bytes.Equal(ja, jb) {
		t.Fatalf("round trip changed the value:\n%s\n%s\n(%v %v)", ja, jb, err1, err2)
	}
}

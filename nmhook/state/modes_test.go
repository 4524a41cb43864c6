package state

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func wantMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("%s has mode %04o, want %04o", path, got, want)
	}
}

// State and cache are root's alone: 0700 directories, 0600 files.
func TestStateFilesArePrivate(t *testing.T) {
	root := t.TempDir()
	stateDir, cacheDir, runDir := filepath.Join(root, "lib", "vnetguard"), filepath.Join(root, "cache", "vnetguard"), filepath.Join(root, "run")
	if _, err := LoadOrCreateULA(stateDir); err != nil {
		t.Fatal(err)
	}
	m := &Memory{}
	m.Remember("default", netip.MustParsePrefix("192.168.122.0/24"), netip.MustParsePrefix("192.168.254.0/24"))
	if err := m.Save(cacheDir); err != nil {
		t.Fatal(err)
	}
	intents := Intents{Dir: filepath.Join(runDir, "intents")}
	if err := intents.Put("libvirt:default", testIntent{Network: "default"}); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{stateDir, filepath.Dir(stateDir), cacheDir, intents.Dir} {
		wantMode(t, d, DirMode)
	}
	for _, f := range []string{filepath.Join(stateDir, ULAFile), filepath.Join(cacheDir, MemoryFile), intents.path("libvirt:default")} {
		wantMode(t, f, FileMode)
	}
}

// Older versions made the directories 0755 and the files 0644: the next
// write tightens the directory and replaces the file with a 0600 one.
func TestOpenDirectoryOfAnOlderVersionIsTightened(t *testing.T) {
	for _, write := range []struct {
		name string
		do   func(dir string) error
		file string
	}{
		{"ULA", func(dir string) error { _, err := LoadOrCreateULA(dir); return err }, ULAFile},
		{"memory", func(dir string) error { return (&Memory{}).Save(dir) }, MemoryFile},
		{"memory update", func(dir string) error {
			return UpdateMemory(context.Background(), dir, func(m *Memory) { m.Record("n", Action{Action: "warn"}) })
		}, MemoryFile},
	} {
		t.Run(write.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "vnetguard")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			os.Chmod(dir, 0o755) // whatever the umask
			if write.file == MemoryFile {
				if err := os.WriteFile(filepath.Join(dir, MemoryFile), []byte(`{"networks":{}}`), 0o644); err != nil {
					t.Fatal(err)
				}
				os.Chmod(filepath.Join(dir, MemoryFile), 0o644)
			}
			if err := write.do(dir); err != nil {
				t.Fatal(err)
			}
			wantMode(t, dir, DirMode)
			wantMode(t, filepath.Join(dir, write.file), FileMode)
		})
	}
}

// A directory others may write to may hold anything: refused, not used.
func TestWritableDirectoryRefused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "vnetguard")
	if err := os.Mkdir(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o777)
	if _, err := LoadOrCreateULA(dir); err == nil || !strings.Contains(err.Error(), "writable by group or others") {
		t.Fatalf("err = %v, want a refusal", err)
	}
	if _, err := os.Stat(filepath.Join(dir, ULAFile)); err == nil {
		t.Fatal("a ULA file was written into a world-writable directory")
	}
	wantMode(t, dir, 0o777)
}

func TestCorruptULASaysHowToRecover(t *testing.T) {
	for name, content := range map[string]string{
		"garbage": "garbage\n",
		"empty":   "",
		"a /64":   "fd12:3456:789a:1::/64\n",
		"huge":    strings.Repeat("fd12:3456:789a::/48\n", 1000),
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, ULAFile)
			if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := LoadOrCreateULA(dir)
			var bad *BadULAError
			if !errors.As(err, &bad) || bad.Path != p {
				t.Fatalf("err = %v, want a BadULAError for %s", err, p)
			}
			want := "remove " + p + " to make a new one, or write a valid fdXX:XXXX:XXXX::/48 in it"
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%v: does not say %q", err, want)
			}
			if b, _ := os.ReadFile(p); string(b) != content {
				t.Error("the file was changed")
			}
		})
	}
}

// A bare null decoded into nothing with no error: a state file that
// existed came back silently empty.
func TestNullStateFilesAreErrors(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, MemoryFile), []byte("null\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadMemory(dir); err == nil {
		t.Error("memory.json holding null accepted")
	}
	s := Intents{Dir: t.TempDir()}
	if err := os.WriteFile(s.path("libvirt:n"), []byte("null"), 0o600); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.Get("libvirt:n", &testIntent{}); err == nil {
		t.Errorf("an intent holding null: found %v, no error", ok)
	}
}

// Keys skips dot files (temporary files): a key starting with '.' must
// still be found by recovery.
func TestIntentKeyStartingWithDotIsListed(t *testing.T) {
	s := Intents{Dir: filepath.Join(t.TempDir(), "intents")}
	for _, k := range []string{".", ".hidden", "..", "a"} {
		if err := s.Put(k, testIntent{Network: k}); err != nil {
			t.Fatal(err)
		}
	}
	keys, err := s.Keys("")
	if err != nil || !slices.Equal(keys, []string{".", "..", ".hidden", "a"}) {
		t.Fatalf("keys = %q, %v", keys, err)
	}
}

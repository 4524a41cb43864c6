package state

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

type testIntent struct {
	Network string `json:"network"`
	Phase   string `json:"phase"`
}

func TestIntentsRoundTrip(t *testing.T) {
	s := Intents{Dir: filepath.Join(t.TempDir(), "intents")}
	if ok, err := s.Get("libvirt:default", &testIntent{}); ok || err != nil {
		t.Fatalf("empty store: %v, %v", ok, err)
	}
	if keys, err := s.Keys(""); err != nil || keys != nil {
		t.Fatalf("keys of a missing dir: %v, %v", keys, err)
	}
	for _, k := range []string{"libvirt:default", "libvirt:a/b", "nm:x"} {
		if err := s.Put(k, testIntent{Network: k, Phase: "prepared"}); err != nil {
			t.Fatal(err)
		}
	}
	keys, err := s.Keys("libvirt:")
	if err != nil || !slices.Equal(keys, []string{"libvirt:a/b", "libvirt:default"}) {
		t.Fatalf("keys = %v, %v", keys, err)
	}
	var got testIntent
	if ok, err := s.Get("libvirt:a/b", &got); !ok || err != nil || got.Network != "libvirt:a/b" {
		t.Fatalf("get: %v %v %+v", ok, err, got)
	}
	fi, err := os.Stat(s.Dir)
	if err != nil || fi.Mode().Perm() != DirMode {
		t.Fatalf("dir mode %v, %v", fi.Mode().Perm(), err)
	}
	if err := s.Delete("libvirt:a/b"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete("libvirt:a/b"); err != nil {
		t.Fatalf("second delete: %v", err)
	}
	if keys, _ := s.Keys(""); !slices.Equal(keys, []string{"libvirt:default", "nm:x"}) {
		t.Fatalf("after delete: %v", keys)
	}
}

func TestIntentCorruptIsAnError(t *testing.T) {
	s := Intents{Dir: t.TempDir()}
	os.Chmod(s.Dir, 0o700)
	os.WriteFile(s.path("libvirt:x"), []byte("{torn"), 0o600)
	if ok, err := s.Get("libvirt:x", &testIntent{}); err == nil || ok {
		t.Fatalf("corrupt intent: %v, %v", ok, err)
	}
}

func TestPrivateDirRefusesLooseModesAndSymlinks(t *testing.T) {
	base := t.TempDir()
	loose := filepath.Join(base, "loose")
	os.Mkdir(loose, 0o777)
	os.Chmod(loose, 0o1777)
	if err := EnsurePrivateDir(loose); err == nil {
		t.Fatal("a 1777 directory was accepted")
	}
	link := filepath.Join(base, "link")
	os.Symlink(t.TempDir(), link)
	if err := EnsurePrivateDir(link); err == nil {
		t.Fatal("a symlinked directory was accepted")
	}
	if _, err := Lock(t.Context(), loose, "x"); err == nil {
		t.Fatal("Lock used a 1777 directory")
	}
	good := filepath.Join(base, "good")
	if err := EnsurePrivateDir(good); err != nil {
		t.Fatal(err)
	}
	// A symlink planted as the lock file is not followed.
	target := filepath.Join(base, "victim")
	os.Symlink(target, filepath.Join(good, "net.lock"))
	if _, err := Lock(t.Context(), good, "net"); err == nil {
		t.Fatal("Lock followed a symlink")
	}
	if _, err := os.Lstat(target); err == nil {
		t.Fatal("the symlink's target was created")
	}
}

func TestUpdateMemoryKeepsConcurrentUpdates(t *testing.T) {
	dir := t.TempDir()
	os.Chmod(dir, 0o700)
	done := make(chan error)
	names := []string{"a", "b", "c", "d", "e", "f", "g", "h"}
	for _, n := range names {
		go func() {
			done <- UpdateMemory(t.Context(), dir, func(m *Memory) { m.Record(n, Action{Action: "warn", Cause: n}) })
		}()
	}
	for range names {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	m, err := LoadMemory(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if m.Networks[n] == nil || m.Networks[n].LastAction.Cause != n {
			t.Errorf("update for %s lost", n)
		}
	}
}

func TestIntentsPendingByBackend(t *testing.T) {
	s := Intents{Dir: filepath.Join(t.TempDir(), "intents")}
	for _, k := range []string{"libvirt:default", "libvirt:a:b", "nm:lab"} {
		if err := s.Put(k, testIntent{Network: k}); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := s.Pending("libvirt"); err != nil || !slices.Equal(got, []string{"a:b", "default"}) {
		t.Fatalf("libvirt: %v, %v", got, err)
	}
	if got, _ := s.Pending("nm"); !slices.Equal(got, []string{"lab"}) {
		t.Fatalf("nm: %v", got)
	}
}

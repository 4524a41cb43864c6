package listener

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A network's status file appearing, being rewritten and going each wake a
// pass; other files do not; a directory made later is found.
func TestWatchStatusDir(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "network")
	events := make(chan string, 16)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { WatchStatusDir(ctx, dir, events, slog.Default()); close(done) }()
	defer func() { cancel(); <-done }()

	time.Sleep(100 * time.Millisecond)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	expect := func(what, sub string) {
		t.Helper()
		deadline := time.After(5 * time.Second)
		for {
			select {
			case e := <-events:
				if strings.Contains(e, sub) {
					return
				}
			case <-deadline:
				t.Fatalf("%s: no wake-up containing %q", what, sub)
			}
		}
	}
	expect("directory appears", "watched")
	os.WriteFile(filepath.Join(dir, "default.pid"), []byte("1"), 0o644)
	os.WriteFile(filepath.Join(dir, "default.xml"), []byte("<networkstatus/>"), 0o600)
	expect("network started", "libvirt network default")
	os.Remove(filepath.Join(dir, "default.xml"))
	expect("network stopped", "libvirt network default")
	select {
	case e := <-events:
		if strings.Contains(e, ".pid") {
			t.Fatalf("a pid file woke a pass: %q", e)
		}
	default:
	}
}

package wake

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRingReachesBell(t *testing.T) {
	p := filepath.Join(t.TempDir(), "wake.sock")
	b, err := Listen(p)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	rings := b.Rings()
	if err := Ring(p, strings.Repeat("x", 2000)); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-rings:
		if len(r) != maxReason {
			t.Fatalf("reason not bounded: %d", len(r))
		}
	case <-time.After(2 * time.Second):
		t.Fatal("no ring")
	}
}

func TestRingWithoutDaemonFailsFast(t *testing.T) {
	start := time.Now()
	if err := Ring(filepath.Join(t.TempDir(), "none.sock"), "x"); err == nil {
		t.Fatal("ring without a daemon succeeded")
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("took %v", d)
	}
}

func TestListenReplacesStaleSocket(t *testing.T) {
	p := filepath.Join(t.TempDir(), "wake.sock")
	b1, err := Listen(p)
	if err != nil {
		t.Fatal(err)
	}
	b1.conn.Close() // a crash: the file stays
	b2, err := Listen(p)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	b2.Close()
}

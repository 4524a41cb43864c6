package guard

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// lockPoll is how often a waiting run retries a lock another run holds.
const lockPoll = 20 * time.Millisecond

// lockNetwork takes an exclusive advisory lock for one network, shared by
// every vnetguard process (hook, daemon, CLI), waiting until ctx ends. The
// kernel drops a flock when its holder dies, so a crash never leaves a
// network locked.
func lockNetwork(ctx context.Context, dir, network string) (unlock func(), err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	// The name comes from libvirt and cannot contain '/', but keep it a
	// single path element whatever it holds.
	name := filepath.Base(filepath.Clean("/" + network))
	f, err := os.OpenFile(filepath.Join(dir, name+".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock network %s: %w", network, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("network %s is locked by another vnetguard run: %w", network, ctx.Err())
		case <-time.After(lockPoll):
		}
	}
}

package state

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

// Lock takes an exclusive advisory lock on dir/name.lock, shared by every
// vnetguard process (hook, daemon, CLI), waiting until ctx ends. The kernel
// drops a flock when its holder dies, so a crash never leaves it held.
// The directory must be root's and writable by no one else, and the lock
// file is never followed through a symlink: another local user must not be
// able to make vnetguard open or create files of their choosing.
func Lock(ctx context.Context, dir, name string) (unlock func(), err error) {
	if err := EnsurePrivateDir(dir); err != nil {
		return nil, err
	}
	// Keep the name a single path element whatever it holds.
	name = filepath.Base(filepath.Clean("/" + name))
	f, err := os.OpenFile(filepath.Join(dir, name+".lock"), os.O_CREATE|os.O_RDWR|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, FileMode)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", name, err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", name, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("%s is locked by another vnetguard run: %w", name, ctx.Err())
		case <-time.After(lockPoll):
		}
	}
}

// EnsurePrivateDir creates dir (mode 0700) if missing, and refuses one that
// is a symlink, not a directory, not owned by our user, or writable by
// group or others. One that others may only read or enter (0755, as older
// versions made the state and cache directories) is tightened to 0700:
// nobody else could have changed what is in it.
func EnsurePrivateDir(dir string) error {
	if err := os.MkdirAll(dir, DirMode); err != nil {
		return err
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory (a symlink?); refusing to use it", dir)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("%s is owned by uid %d, not by uid %d; refusing to use it (remove it)", dir, st.Uid, os.Geteuid())
	}
	perm := fi.Mode().Perm()
	if perm&0o022 != 0 {
		return fmt.Errorf("%s is writable by group or others (mode %04o); refusing to use it (chmod 700 it)", dir, perm)
	}
	if perm != DirMode {
		if err := os.Chmod(dir, DirMode); err != nil {
			return fmt.Errorf("tighten %s to mode %04o: %w", dir, DirMode, err)
		}
	}
	return nil
}

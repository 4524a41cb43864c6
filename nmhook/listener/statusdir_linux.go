package listener

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// WatchStatusDir wakes a pass when a file NAME.xml appears, changes or
// goes in dir: libvirt's network driver writes /run/libvirt/network/NAME.xml
// when a network starts (or is renumbered) and removes it when it stops.
// That is libvirt's network lifecycle, seen with no call into libvirt, so a
// network started or destroyed behind the daemon's back reaches its state
// at once. A missing directory (libvirt not installed or not started yet)
// is looked for again every few seconds.
func WatchStatusDir(ctx context.Context, dir string, events chan<- string, log *slog.Logger) {
	missingLogged := false
	for ctx.Err() == nil {
		err := watchDirOnce(ctx, dir, events)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, unix.ENOENT) {
			if !missingLogged {
				log.Debug("libvirt's status directory is not there yet; looking again", "dir", dir)
				missingLogged = true
			}
		} else if err != nil {
			log.Warn("watching libvirt's status directory failed; retrying", "dir", dir, "error", err)
		}
		sleep(ctx, 3*time.Second)
	}
}

func watchDirOnce(ctx context.Context, dir string, events chan<- string) error {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	const mask = unix.IN_CREATE | unix.IN_DELETE | unix.IN_CLOSE_WRITE | unix.IN_MOVED_TO |
		unix.IN_MOVED_FROM | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF
	if _, err := unix.InotifyAddWatch(fd, dir, mask); err != nil {
		return err
	}
	// The directory may have changed before the watch: one pass catches up.
	wake(events, "libvirt status directory watched")
	buf := make([]byte, 16*(unix.SizeofInotifyEvent+unix.NAME_MAX+1))
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for ctx.Err() == nil {
		// Poll with a timeout so that ctx's end is seen without another
		// goroutine.
		n, err := unix.Poll(pfd, 500)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return err
		}
		if n <= 0 {
			continue
		}
		got, err := unix.Read(fd, buf)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		for off := 0; off+unix.SizeofInotifyEvent <= got; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			name := strings.TrimRight(string(buf[off+unix.SizeofInotifyEvent:off+unix.SizeofInotifyEvent+int(ev.Len)]), "\x00")
			off += unix.SizeofInotifyEvent + int(ev.Len)
			if ev.Mask&(unix.IN_DELETE_SELF|unix.IN_MOVE_SELF|unix.IN_IGNORED) != 0 {
				return errors.New("directory removed")
			}
			if ev.Mask&unix.IN_Q_OVERFLOW != 0 {
				wake(events, "libvirt status directory overflow")
				continue
			}
			if network, ok := strings.CutSuffix(name, ".xml"); ok && network != "" {
				wake(events, "libvirt network "+network+" started, changed or stopped")
			}
		}
	}
	return nil
}

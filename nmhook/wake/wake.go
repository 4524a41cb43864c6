// Package wake is the doorbell between the dispatcher hook and the
// listener daemon: a Unix datagram socket. A ring carries no state (the
// daemon re-reads everything), only a short reason for its log.
package wake

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"
)

// DefaultPath is the daemon's socket.
const DefaultPath = "/run/vnetguard/wake.sock"

// maxReason bounds a ring's payload.
const maxReason = 512

// Ring tells a listening daemon to re-check. It fails fast (no daemon, no
// socket, a full queue) so the hook can fall back to checking itself.
func Ring(path, reason string) error {
	if len(reason) > maxReason {
		reason = reason[:maxReason]
	}
	c, err := net.DialTimeout("unixgram", path, 200*time.Millisecond)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
	_, err = c.Write([]byte(reason))
	return err
}

// Bell is the daemon's end.
type Bell struct {
	conn *net.UnixConn
	path string
}

// Listen binds the socket, replacing a stale one left by a crash. Only root
// may ring (mode 0600): a ring costs a full re-read.
func Listen(path string) (*Bell, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		c.Close()
		return nil, err
	}
	return &Bell{conn: c, path: path}, nil
}

// Rings delivers reasons until the bell is closed.
func (b *Bell) Rings() <-chan string {
	ch := make(chan string, 16)
	go func() {
		defer close(ch)
		buf := make([]byte, maxReason)
		for {
			n, _, err := b.conn.ReadFromUnix(buf)
			if err != nil {
				return
			}
			select {
			case ch <- string(buf[:n]):
			default: // a wake-up is already pending; one is enough
			}
		}
	}()
	return ch
}

// Close stops listening and removes the socket.
func (b *Bell) Close() error {
	err := b.conn.Close()
	os.Remove(b.path)
	return err
}

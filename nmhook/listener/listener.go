// Package listener is the long-running side of vnetguard: it turns kernel
// netlink notifications, NetworkManager and libvirt D-Bus signals and the
// dispatcher hook's doorbell into debounced passes of detect-and-act.
// Events are only wake-ups: every pass re-reads the whole state.
package listener

import (
	"context"
	"log/slog"
	"time"
)

// Pass runs one round of detect and act. It returns when it wants to be
// run again without a new event (a network held back by damping), or zero.
type Pass func(ctx context.Context, reason string) (again time.Duration)

// Config tunes the listener.
type Config struct {
	// Debounce is the quiet time after an event before a pass. Address and
	// route changes come in bursts (an interface coming up brings an
	// address, a prefix route, a default route, IPv6 addresses after DAD);
	// one pass after the burst sees the settled state, and an address that
	// comes and goes within it moves nothing.
	Debounce time.Duration
	// MaxDelay caps the wait while events keep coming.
	MaxDelay time.Duration
	Log      *slog.Logger
}

// Run waits for wake-ups and runs passes until ctx ends. A pass is never
// run concurrently with another. A wake-up on events waits for the
// debounce; one on urgent (a change that creates a clash) runs a pass at
// once (leading edge), unless an urgent pass ran within the last debounce,
// so that a storm of urgent changes costs at most one pass per debounce.
func Run(ctx context.Context, cfg Config, events, urgent <-chan string, pass Pass) {
	if cfg.Debounce <= 0 {
		cfg.Debounce = 300 * time.Millisecond
	}
	if cfg.MaxDelay < cfg.Debounce {
		cfg.MaxDelay = 4 * cfg.Debounce
	}
	log := cfg.Log
	if log == nil {
		log = slog.Default()
	}
	var (
		timer    *time.Timer
		timerC   <-chan time.Time
		first    time.Time
		reasons  []string
		retryC   <-chan time.Time
		lastHot  time.Time // when the last pass an urgent wake-up asked for ran
		hot      bool      // an urgent pass is scheduled: plain events don't postpone it
		schedule = func(d time.Duration) {
			if timer == nil {
				timer = time.NewTimer(d)
			} else {
				timer.Reset(d)
			}
			timerC = timer.C
		}
	)
	for {
		select {
		case <-ctx.Done():
			return
		case r, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if len(reasons) == 0 {
				first = time.Now()
			}
			if len(reasons) < 8 {
				reasons = append(reasons, r)
			}
			if hot {
				continue
			}
			// Wait for quiet, but never longer than MaxDelay after the
			// first event of the burst.
			wait := cfg.Debounce
			if left := cfg.MaxDelay - time.Since(first); left < wait {
				wait = max(left, 0)
			}
			schedule(wait)
		case r, ok := <-urgent:
			if !ok {
				urgent = nil
				continue
			}
			if len(reasons) == 0 {
				first = time.Now()
			}
			if len(reasons) < 8 {
				reasons = append(reasons, r)
			}
			if !hot {
				hot = true
				schedule(max(cfg.Debounce-time.Since(lastHot), 0))
			}
		case <-retryC:
			retryC = nil
			reasons = append(reasons, "damping window ended")
			schedule(0)
		case <-timerC:
			timerC = nil
			why := summarize(reasons)
			reasons = reasons[:0]
			if hot {
				lastHot, hot = time.Now(), false
			}
			if again := pass(ctx, why); again > 0 {
				retryC = time.After(again)
			}
		}
	}
}

func summarize(reasons []string) string {
	if len(reasons) == 0 {
		return "timer"
	}
	s := reasons[0]
	for _, r := range reasons[1:] {
		s += ", " + r
	}
	return s
}

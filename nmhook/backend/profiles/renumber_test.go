package profiles

import (
	"context"
	"testing"
	"time"
)

// A renumber under way is carried through until the caller's deadline,
// never less than carryFloor, and not cancelled with the caller.
func TestCarryContext(t *testing.T) {
	deadlineIn := func(ctx context.Context) time.Duration {
		dl, ok := ctx.Deadline()
		if !ok {
			t.Fatal("no deadline")
		}
		return time.Until(dl)
	}
	for _, tc := range []struct {
		name     string
		caller   time.Duration // 0: no deadline
		min, max time.Duration
	}{
		{"no deadline", 0, carryDefault - time.Second, carryDefault},
		{"plenty left", 40 * time.Second, 39 * time.Second, 40 * time.Second},
		{"little left", time.Second, carryFloor - time.Second, carryFloor},
		{"expired", -time.Second, carryFloor - time.Second, carryFloor},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent, cancel := context.WithCancel(context.Background())
			if tc.caller != 0 {
				parent, cancel = context.WithTimeout(context.Background(), tc.caller)
			}
			ctx, stop := carryContext(parent)
			defer stop()
			cancel()
			if got := deadlineIn(ctx); got < tc.min || got > tc.max {
				t.Errorf("carried for %v, want %v to %v", got, tc.min, tc.max)
			}
			if ctx.Err() != nil {
				t.Errorf("cancelled with its caller: %v", ctx.Err())
			}
		})
	}
}

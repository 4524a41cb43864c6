package nm

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/godbus/dbus/v5"
)

func TestLost(t *testing.T) {
	for _, tc := range []struct {
		err  error
		lost bool
	}{
		{nil, false},
		{fmt.Errorf("NetworkManager Update2 /x: %w", fmt.Errorf("%w within 25s (stopped or hung?)", ErrNoAnswer)), true},
		{fmt.Errorf("NetworkManager Reapply /x: %w", dbus.Error{Name: "org.freedesktop.DBus.Error.NoReply"}), true},
		{dbus.Error{Name: "org.freedesktop.DBus.Error.ServiceUnknown"}, false},
		{dbus.Error{Name: "org.freedesktop.NetworkManager.InvalidArguments"}, false},
		{context.Canceled, false},
		{errors.New("other"), false},
	} {
		if got := Lost(tc.err); got != tc.lost {
			t.Errorf("Lost(%v) = %v, want %v", tc.err, got, tc.lost)
		}
	}
}

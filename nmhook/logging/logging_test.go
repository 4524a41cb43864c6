package logging

import "testing"

func TestFieldName(t *testing.T) {
	for in, want := range map[string]string{"network": "NETWORK", "old_subnet": "OLD_SUBNET", "new-subnet": "NEW_SUBNET", "_x": "X", "9lives": "F_9LIVES", "a.b": "A_B"} {
		if got := FieldName(in); got != want {
			t.Errorf("FieldName(%q) = %q, want %q", in, got, want)
		}
	}
}

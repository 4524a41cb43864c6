package libvirt

import (
	"net/netip"
	"testing"
)

func TestNextStep(t *testing.T) {
	old := []netip.Prefix{netip.MustParsePrefix("192.168.122.1/24"), netip.MustParsePrefix("fd00:1::1/64")}
	moved := []netip.Prefix{netip.MustParsePrefix("192.168.254.1/24"), netip.MustParsePrefix("fd00:1::1/64")}
	other := []netip.Prefix{netip.MustParsePrefix("10.1.2.1/24")}
	for _, tc := range []struct {
		name string
		obs  observed
		want step
	}{
		{"gone (a transient network destroyed)", observed{}, stepStart},
		{"defined, stopped", observed{Found: true, Persistent: true}, stepStart},
		{"running on the target", observed{Found: true, Active: true, Live: moved}, stepFinish},
		{"running on the target, other order and host bits", observed{Found: true, Active: true,
			Live: []netip.Prefix{netip.MustParsePrefix("fd00:1::5/64"), netip.MustParsePrefix("192.168.254.9/24")}}, stepFinish},
		{"still on the old subnets: never stopped", observed{Found: true, Active: true, Live: old}, stepAbandon},
		{"restarted elsewhere by someone else", observed{Found: true, Active: true, Live: other}, stepLeave},
	} {
		if got := nextStep(moved, old, tc.obs); got != tc.want {
			t.Errorf("%s: step %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestIntentKeyRoundTrip(t *testing.T) {
	if k := intentKey("default"); k != "libvirt:default" {
		t.Fatalf("key %q", k)
	}
}

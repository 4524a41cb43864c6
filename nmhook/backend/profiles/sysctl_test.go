package profiles

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Only the physical ports of a bridge (a device behind them in sysfs) get
// accept_ra=0; a guest's veth or tap, and a port already quiet, are left.
func TestQuietPhysicalPorts(t *testing.T) {
	class, sys := t.TempDir(), t.TempDir()
	for port, ra := range map[string]string{"eth1": "1", "vnet0": "1", "eth2": "0"} {
		os.MkdirAll(filepath.Join(class, port), 0o755)
		if port != "vnet0" {
			os.MkdirAll(filepath.Join(class, port, "device"), 0o755)
		}
		os.MkdirAll(filepath.Join(sys, "net/ipv6/conf", port), 0o755)
		os.WriteFile(filepath.Join(sys, "net/ipv6/conf", port, "accept_ra"), []byte(ra+"\n"), 0o644)
	}
	changed, err := quietPhysicalPorts([]string{"eth1", "vnet0", "eth2"}, class, sys)
	if err != nil || len(changed) != 1 || changed[0] != "eth1" {
		t.Fatalf("changed %v, %v; want [eth1]", changed, err)
	}
	for port, want := range map[string]string{"eth1": "0", "vnet0": "1", "eth2": "0"} {
		if v, _ := os.ReadFile(filepath.Join(sys, "net/ipv6/conf", port, "accept_ra")); strings.TrimSpace(string(v)) != want {
			t.Errorf("%s: accept_ra %q, want %s", port, v, want)
		}
	}
}

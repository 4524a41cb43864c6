package libvirt

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// Only a dnsmasq running this network's configuration is stopped; a pid
// reused by anything else is left alone.
func TestStopStaleDnsmasqOnlyStopsThatNetworksDnsmasq(t *testing.T) {
	dir := t.TempDir()
	// A stand-in whose command line reads "dnsmasq ... --conf-file=.../fc.conf",
	// as libvirt starts it.
	cmd := exec.Command("bash", "-c", `exec -a dnsmasq bash -c 'sleep 30; true' x --conf-file=/var/lib/libvirt/dnsmasq/fc.conf`)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-done })
	os.WriteFile(filepath.Join(dir, "other.pid"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644)
	time.Sleep(100 * time.Millisecond) // let the exec happen
	if stopped, _ := stopStaleDnsmasq(dir, "other"); stopped {
		t.Fatal("stopped a dnsmasq of another network")
	}
	os.WriteFile(filepath.Join(dir, "fc.pid"), []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644)
	stopped, err := stopStaleDnsmasq(dir, "fc")
	if err != nil || !stopped {
		t.Fatalf("stopped=%v err=%v", stopped, err)
	}
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("still running")
	}
	if stopped, _ := stopStaleDnsmasq(dir, "none"); stopped {
		t.Fatal("no pid file, yet something stopped")
	}
}

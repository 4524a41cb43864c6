package libvirt

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// stopStaleDnsmasq ends the dnsmasq that a killed libvirtd left running for
// a network libvirt now counts as stopped: it still holds the network's
// address and port 53, so starting the network again fails ("Address
// already in use"). libvirt records that dnsmasq's pid in
// StatusDir/NAME.pid. Only a process whose command line is dnsmasq with
// this network's own configuration file is signalled.
func stopStaleDnsmasq(statusDir, network string) (bool, error) {
	if statusDir == "" {
		return false, nil
	}
	b, err := os.ReadFile(filepath.Join(statusDir, network+".pid"))
	if err != nil {
		return false, nil // no record: nothing of ours to stop
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return false, nil
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false, nil // already gone
	}
	args := bytes.Split(bytes.TrimRight(cmdline, "\x00"), []byte{0})
	if len(args) == 0 || filepath.Base(string(args[0])) != "dnsmasq" ||
		!bytes.Contains(cmdline, []byte("/"+network+".conf")) {
		return false, nil // the pid was reused by something else
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return false, fmt.Errorf("stop stale dnsmasq %d of network %s: %w", pid, network, err)
	}
	for range 50 {
		if syscall.Kill(pid, 0) != nil {
			return true, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	syscall.Kill(pid, syscall.SIGKILL)
	return true, nil
}

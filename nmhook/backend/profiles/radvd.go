package profiles

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vnetguard/vnetguard/netdef"
	"github.com/vnetguard/vnetguard/nmhook/state"
)

// HasRadvd tells whether an <ip> carries the <radvd/> marker: its router
// advertisements come from a radvd vnetguard runs, not from NetworkManager.
func HasRadvd(ip netdef.IP) bool {
	for _, e := range ip.Extra {
		if e.XMLName.Local == "radvd" {
			return true
		}
	}
	return false
}

// RadvdPrefixes are the IPv6 subnets of a network that radvd advertises.
func RadvdPrefixes(d *netdef.Definition) []netip.Prefix {
	var out []netip.Prefix
	for _, ip := range d.Network.IPs {
		if p, err := ip.Subnet(); err == nil && p.Addr().Is6() && HasRadvd(ip) {
			out = append(out, p.Masked())
		}
	}
	return out
}

// RadvdConfig is radvd's configuration for a network: its bridge sends
// router advertisements for the prefixes, for SLAAC. A routed or NAT
// network advertises itself as a default router; an isolated one does not
// (AdvDefaultLifetime 0).
func RadvdConfig(d *netdef.Definition) []byte {
	ps := RadvdPrefixes(d)
	if len(ps) == 0 {
		return nil
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "# written by vnetguard for network %s; rewritten on every change\ninterface %s {\n", d.Network.Name, d.Network.BridgeName())
	b.WriteString("\tAdvSendAdvert on;\n\tMinRtrAdvInterval 3;\n\tMaxRtrAdvInterval 10;\n")
	if m := d.Network.ForwardMode(); m == "" {
		b.WriteString("\tAdvDefaultLifetime 0;\n")
	}
	for _, p := range ps {
		fmt.Fprintf(&b, "\tprefix %s {\n\t\tAdvOnLink on;\n\t\tAdvAutonomous on;\n\t};\n", p)
	}
	b.WriteString("};\n")
	return b.Bytes()
}

// Radvd runs one radvd per running network that asks for it, each with
// its configuration, pid file and log in Dir (/run/vnetguard/radvd).
type Radvd struct {
	Dir  string
	Path string // the radvd binary; "" means /usr/sbin/radvd
}

func (r Radvd) files(name string) (conf, pid, log string) {
	base := filepath.Join(r.Dir, name)
	return base + ".conf", base + ".pid", base + ".log"
}

// running returns the pid of the network's radvd, 0 when none runs.
func (r Radvd) running(name string) int {
	_, pidFile, _ := r.files(name)
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0
	}
	cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !bytes.Contains(cmd, []byte("radvd")) {
		return 0
	}
	return pid
}

// Sync makes the radvds match nets: a new configuration is written and
// its radvd started, or kicked (SIGHUP) when its configuration changed; a
// network that no longer runs (or no longer asks for radvd) has its radvd
// stopped and its files removed.
func (r Radvd) Sync(nets []*netdef.Definition) error {
	want := map[string][]byte{}
	for _, d := range nets {
		if c := RadvdConfig(d); c != nil {
			want[d.Network.Name] = c
		}
	}
	var errs []error
	if len(want) > 0 {
		if err := state.EnsurePrivateDir(r.Dir); err != nil {
			return err
		}
	}
	for name, conf := range want {
		errs = append(errs, r.ensure(name, conf))
	}
	ents, err := os.ReadDir(r.Dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, err)
	}
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".conf")
		if !ok || want[name] != nil {
			continue
		}
		errs = append(errs, r.stop(name))
	}
	return errors.Join(errs...)
}

// Kick sends SIGHUP to every running radvd: an interface appeared or
// changed, and radvd re-reads its configuration and the interface.
func (r Radvd) Kick(nets []*netdef.Definition) {
	for _, d := range nets {
		if pid := r.running(d.Network.Name); pid > 0 {
			syscall.Kill(pid, syscall.SIGHUP)
		}
	}
}

func (r Radvd) ensure(name string, conf []byte) error {
	confFile, pidFile, logFile := r.files(name)
	old, _ := os.ReadFile(confFile)
	pid := r.running(name)
	if pid > 0 && bytes.Equal(old, conf) {
		return nil
	}
	if err := state.WriteFileAtomic(confFile, conf, 0o600); err != nil {
		return err
	}
	if pid > 0 {
		if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
			return fmt.Errorf("radvd of network %s: %w", name, err)
		}
		return nil
	}
	bin := r.Path
	if bin == "" {
		bin = "/usr/sbin/radvd"
	}
	// radvd forks into the background (and outlives this run); it checks
	// its configuration first and exits non-zero on an error.
	out, err := exec.Command(bin, "-C", confFile, "-p", pidFile, "-m", "logfile", "-l", logFile).CombinedOutput()
	if err != nil {
		return fmt.Errorf("start radvd for network %s: %w: %s", name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (r Radvd) stop(name string) error {
	confFile, pidFile, logFile := r.files(name)
	if pid := r.running(name); pid > 0 {
		syscall.Kill(pid, syscall.SIGTERM)
		for i := 0; i < 100 && r.running(name) > 0; i++ {
			time.Sleep(20 * time.Millisecond)
		}
	}
	var errs []error
	for _, f := range []string{confFile, pidFile, logFile} {
		if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

package profiles

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vnetguard/vnetguard/nmhook/state"
)

// sidecar keeps one helper daemon (radvd, dnsmasq) per running network
// that needs one, each with its configuration, pid file and log in dir,
// named after the network. The daemons fork into the background and
// outlive the vnetguard run that started them, as libvirt's do; every sync
// (network start, stop, renumber, and each pass of the guard) starts the
// missing ones again, which is how they are supervised.
type sidecar struct {
	dir string
	// start runs the daemon on conf; it returns once the daemon has
	// checked its configuration and forked, writing pid.
	start func(name, conf, pid, log string) error
	// hupReloads: the daemon re-reads a changed configuration on SIGHUP
	// (radvd). Otherwise it is restarted (dnsmasq re-reads only its hosts
	// files on SIGHUP).
	hupReloads bool
	// more names files of a network's daemon besides conf, pid and log
	// (dnsmasq's leases), removed when it stops.
	more []string
}

func (s sidecar) files(name string) (conf, pid, log string) {
	base := filepath.Join(s.dir, name)
	return base + ".conf", base + ".pid", base + ".log"
}

// running returns the pid of the network's daemon, 0 when none runs. A pid
// counts only if that process was started on this network's configuration
// file: a stale pid file whose number was reused is not ours.
func (s sidecar) running(name string) int {
	conf, pidFile, _ := s.files(name)
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0
	}
	cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	for i := 0; i < 3 && err == nil && len(cmd) == 0; i++ {
		// Empty while the process is in the middle of an exec.
		time.Sleep(5 * time.Millisecond)
		cmd, err = os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	}
	if err != nil || !bytes.Contains(cmd, []byte(conf)) {
		return 0
	}
	if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		// A zombie (state Z after the command's ")") is gone.
		if i := bytes.LastIndexByte(st, ')'); i > 0 && i+2 < len(st) && st[i+2] == 'Z' {
			return 0
		}
	}
	return pid
}

// sync makes the daemons match want (network name → configuration): a
// new or changed configuration is written and its daemon started, kicked
// or restarted; a dead daemon is started again; a network no longer in
// want has its daemon stopped and its files removed.
func (s sidecar) sync(want map[string][]byte) error {
	var errs []error
	if len(want) > 0 {
		if err := state.EnsurePrivateDir(s.dir); err != nil {
			return err
		}
	}
	for name, conf := range want {
		errs = append(errs, s.ensure(name, conf))
	}
	ents, err := os.ReadDir(s.dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, err)
	}
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".conf")
		if !ok || want[name] != nil {
			continue
		}
		errs = append(errs, s.stop(name))
	}
	return errors.Join(errs...)
}

func (s sidecar) ensure(name string, conf []byte) error {
	confFile, pidFile, logFile := s.files(name)
	old, _ := os.ReadFile(confFile)
	pid := s.running(name)
	if pid > 0 && bytes.Equal(old, conf) {
		return nil
	}
	if err := state.WriteFileAtomic(confFile, conf, 0o600); err != nil {
		return err
	}
	if pid > 0 && s.hupReloads {
		return syscall.Kill(pid, syscall.SIGHUP)
	}
	if pid > 0 {
		s.terminate(name, pid)
	}
	if err := s.start(name, confFile, pidFile, logFile); err != nil {
		// Another vnetguard run (a daemon pass beside `net start`) may
		// have started it on the same configuration meanwhile.
		if now, _ := os.ReadFile(confFile); s.running(name) > 0 && bytes.Equal(now, conf) {
			return nil
		}
		return err
	}
	return nil
}

// terminate stops a daemon and waits up to 2 s for it to go.
func (s sidecar) terminate(name string, pid int) {
	syscall.Kill(pid, syscall.SIGTERM)
	for i := 0; i < 100 && s.running(name) > 0; i++ {
		time.Sleep(20 * time.Millisecond)
	}
}

func (s sidecar) stop(name string) error {
	confFile, pidFile, logFile := s.files(name)
	if pid := s.running(name); pid > 0 {
		s.terminate(name, pid)
	}
	var errs []error
	files := []string{confFile, pidFile, logFile}
	for _, suffix := range s.more {
		files = append(files, filepath.Join(s.dir, name+suffix))
	}
	for _, f := range files {
		if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// kick sends SIGHUP to the named networks' running daemons.
func (s sidecar) kick(names []string) {
	for _, n := range names {
		if pid := s.running(n); pid > 0 {
			syscall.Kill(pid, syscall.SIGHUP)
		}
	}
}

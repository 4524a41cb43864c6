//go:build lab

package e2e

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// daemon is a running `vnetguard watch` with its log captured.
type daemon struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	log  []string
	done chan struct{}
}

// testConfig is a configuration for daemon tests: a short debounce keeps
// the tests quick, the damping window is the shipped one.
func writeConfig(t testing.TB, body string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "vnetguard.conf")
	if err := os.WriteFile(f, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

func startDaemon(t testing.TB, d dirs, config string) *daemon {
	t.Helper()
	return startDaemonAt(t, d, config, filepath.Join(t.TempDir(), "wake.sock"))
}

// startDaemonAt starts the daemon with its doorbell at socket.
func startDaemonAt(t testing.TB, d dirs, config, socket string) *daemon {
	t.Helper()
	return startDaemonWith(t, d, config, socket)
}

// startDaemonWith starts the daemon with more flags.
func startDaemonWith(t testing.TB, d dirs, config, socket string, more ...string) *daemon {
	t.Helper()
	args := d.flags(append([]string{"watch", "--config", config, "--wake-socket", socket}, more...)...)
	dm := startDaemonCmd(t, exec.Command(vnetguardBin, args...))
	eventually(t, 20*time.Second, "the daemon to be ready", func() bool { return dm.count("msg=listening") > 0 })
	return dm
}

// startDaemonCmd starts cmd, a `vnetguard watch`, with its log captured
// and stopped (SIGTERM, expecting a clean exit) at cleanup.
func startDaemonCmd(t testing.TB, cmd *exec.Cmd) *daemon {
	t.Helper()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	dm := &daemon{cmd: cmd, done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			dm.mu.Lock()
			dm.log = append(dm.log, sc.Text())
			dm.mu.Unlock()
		}
		close(dm.done)
	}()
	t.Cleanup(func() { dm.stop(t) })
	return dm
}

// stop sends SIGTERM and expects a clean exit.
func (dm *daemon) stop(t testing.TB) {
	if dm.cmd.ProcessState != nil {
		return
	}
	dm.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-dm.done:
	case <-time.After(10 * time.Second):
		dm.cmd.Process.Kill()
		t.Errorf("daemon did not stop on SIGTERM")
	}
	if err := dm.cmd.Wait(); err != nil {
		t.Errorf("daemon exit: %v", err)
	}
	t.Logf("daemon log:\n%s", strings.Join(dm.lines(), "\n"))
}

func (dm *daemon) lines() []string {
	dm.mu.Lock()
	defer dm.mu.Unlock()
	return append([]string(nil), dm.log...)
}

// count counts log lines holding every one of the substrings.
func (dm *daemon) count(subs ...string) int {
	n := 0
	for _, l := range dm.lines() {
		all := true
		for _, s := range subs {
			all = all && strings.Contains(l, s)
		}
		if all {
			n++
		}
	}
	return n
}

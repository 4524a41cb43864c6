package labkit

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// PIDOf is the pid of the lab's process named exactly name (pgrep -x), 0
// when none runs (a zombie does not count). The lab's /proc shows only the lab's processes.
func PIDOf(name string) int {
	out, err := Try("pgrep", "-x", name)
	if err != nil {
		return 0
	}
	for _, f := range strings.Fields(out) {
		if pid, _ := strconv.Atoi(f); pid > 0 && !Gone(pid) {
			return pid
		}
	}
	return 0 // only zombies
}

// Gone tells whether process pid has exited: no such process, or a zombie
// its parent has not reaped yet (the lab's init reaps the daemons it
// started only now and then).
func Gone(pid int) bool {
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// The state follows the command name's closing parenthesis.
	i := strings.LastIndexByte(string(st), ')')
	return i < 0 || i+2 >= len(st) || st[i+2] == 'Z' || st[i+2] == 'X'
}

// startDaemon starts argv as scripts/lab starts its daemons (a session of
// its own, no terminal, output to LAB_LOGDIR/log with a number added when
// that exists already) and reaps it when it exits.
func startDaemon(t testing.TB, log string, argv ...string) *exec.Cmd {
	t.Helper()
	dir := os.Getenv("LAB_LOGDIR")
	if dir == "" {
		dir = os.TempDir()
	}
	ext := filepath.Ext(log)
	path := filepath.Join(dir, log)
	for i := 2; ; i++ {
		if _, err := os.Stat(path); err != nil {
			break
		}
		path = filepath.Join(dir, fmt.Sprintf("%s-%d%s", strings.TrimSuffix(log, ext), i, ext))
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	go cmd.Wait()
	return cmd
}

// StartNetworkManager starts NetworkManager as scripts/lab does (its log:
// LAB_LOGDIR/NetworkManager-N.log) and waits until it has finished
// starting up. Whatever the previous one left (devices, profiles in
// /run, dnsmasq) it takes over as on a real host.
func StartNetworkManager(t testing.TB) {
	t.Helper()
	if PIDOf("NetworkManager") != 0 {
		t.Fatal("NetworkManager is running already")
	}
	startDaemon(t, "NetworkManager.log", "NetworkManager", "--no-daemon", "--debug")
	Eventually(t, 30*time.Second, "NetworkManager to answer", func() bool {
		_, err := Try("nmcli", "-t", "general", "status")
		return err == nil
	})
	Run(t, "nm-online", "--wait-for-startup", "--quiet", "--timeout=30")
}

// StartFirewalld starts firewalld inside the lab (its configuration the
// package's, FirewallBackend=nftables on Debian; its log
// LAB_LOGDIR/firewalld.log) and waits until it runs. At cleanup it is
// stopped (CleanupOnExit removes its table) and waited for. The lab's
// /etc is an overlay: whatever firewall-cmd --permanent writes vanishes
// with it.
func StartFirewalld(t testing.TB) {
	t.Helper()
	if PIDOf("firewalld") != 0 {
		t.Fatal("firewalld is running already")
	}
	log := filepath.Join(os.Getenv("LAB_LOGDIR"), "firewalld-file.log")
	cmd := startDaemon(t, "firewalld.log", "firewalld", "--nofork", "--nopid", "--debug=2",
		"--log-target", "file", "--log-file", log)
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		deadline := time.Now().Add(20 * time.Second)
		for !Gone(cmd.Process.Pid) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
	})
	Eventually(t, 60*time.Second, "firewalld to run", func() bool {
		out, _ := Try("firewall-cmd", "--state")
		return strings.TrimSpace(out) == "running"
	})
}

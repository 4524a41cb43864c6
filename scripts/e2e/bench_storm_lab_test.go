//go:build lab

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vnetguard/vnetguard/scripts/labkit"
)

// BenchmarkStorm: an address storm on an uplink (ip -batch adding and
// removing addresses as fast as the kernel takes them, for about 10 s),
// first of addresses that clash with nothing, then of one that clashes
// with a running network. Reports the daemon's CPU use over the storm (a
// share of one core) and how many times the network moved (the damping
// window allows one).
//
//	scripts/lab run -- go test -tags lab -run '^$' -bench Storm -benchtime 1x ./scripts/e2e/
func BenchmarkStorm(b *testing.B) {
	labkit.Require(b)
	d := dirs{cache: b.TempDir(), state: b.TempDir()}
	defineNetwork(b, netSpec{name: "st", bridge: "vbr-st", v4: "192.168.179", policy: "renumber"})
	labkit.NewUplink(b, "up-st", "")
	dm := startDaemon(b, d, writeConfig(b, ""))
	time.Sleep(time.Second)

	storm := func(label, cidr string) (events int, cpuShare float64, took time.Duration) {
		f := filepath.Join(b.TempDir(), "storm")
		var sb strings.Builder
		const pairs = 50_000
		for range pairs {
			fmt.Fprintf(&sb, "addr add %s dev up-st\naddr del %s dev up-st\n", cidr, cidr)
		}
		os.WriteFile(f, []byte(sb.String()), 0o644)
		cpu0 := cpuTime(b, dm.cmd.Process.Pid)
		start := time.Now()
		labkit.Run(b, "ip", "-batch", f)
		took = time.Since(start)
		time.Sleep(time.Second) // the last debounced pass
		cpu := cpuTime(b, dm.cmd.Process.Pid) - cpu0
		cpuShare = cpu.Seconds() / (took + time.Second).Seconds()
		b.Logf("%s: %d address events in %v (%.0f/s); daemon CPU %v = %.1f%% of a core",
			label, 2*pairs, took.Round(time.Millisecond), float64(2*pairs)/took.Seconds(), cpu.Round(time.Millisecond), 100*cpuShare)
		return 2 * pairs, cpuShare, took
	}
	_, quiet, _ := storm("addresses clashing with nothing", "100.70.0.1/24")
	before := dm.count("renumbered virtual network", "network=st")
	_, clash, _ := storm("an address clashing with the network", "192.168.179.50/24")
	moves := dm.count("renumbered virtual network", "network=st") - before
	b.Logf("moves of the network during the clashing storm: %d", moves)
	b.ReportMetric(100*quiet, "%core-quiet-storm")
	b.ReportMetric(100*clash, "%core-clash-storm")
	b.ReportMetric(float64(moves), "moves")
}

// cpuTime is a process's user+system CPU time, from /proc/PID/stat.
func cpuTime(b *testing.B, pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command (in parentheses): state is 3rd, utime 14th,
	// stime 15th of the whole line.
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.Atoi(f[11])
	st, _ := strconv.Atoi(f[12])
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}

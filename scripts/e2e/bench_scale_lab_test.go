//go:build lab

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vnetguard/vnetguard/scripts/labkit"
)

// BenchmarkScale100kRoutes: with 100,000 routes loaded in a routing table
// (as a full BGP feed or a large VPN would), the daemon's resident memory
// after its first pass and the time of one full pass (resolve --dry-run),
// next to the same figures with no extra routes, measured in the same run:
//
//	scripts/lab run -- go test -tags lab -run '^$' -bench Scale100k -benchtime 1x ./scripts/e2e/
func BenchmarkScale100kRoutes(b *testing.B) {
	labkit.Require(b)
	d := dirs{cache: b.TempDir(), state: b.TempDir()}
	defineNetwork(b, netSpec{name: "sc", bridge: "vbr-sc", v4: "192.168.177", policy: "renumber"})
	labkit.NewUplink(b, "up-sc", "")
	labkit.Run(b, "ip", "addr", "add", "100.64.0.1/10", "dev", "up-sc")

	measure := func(label string) (rssMB float64, pass time.Duration) {
		dm := startDaemon(b, d, writeConfig(b, ""))
		time.Sleep(time.Second) // the first pass is done once it is ready
		rssMB = rss(b, dm.cmd.Process.Pid)
		hwm := procStatus(b, dm.cmd.Process.Pid, "VmHWM:")
		dm.stop(b)
		b.Logf("%s: daemon peak RSS %.1f MB; passes: %d", label, hwm, dm.count("msg=checked"))
		var best time.Duration
		for range 5 {
			start := time.Now()
			if r := vnetguard(b, nil, d.flags("resolve", "--dry-run")...); r.code == 2 {
				b.Fatalf("resolve --dry-run: %s", r.stderr)
			}
			if t := time.Since(start); best == 0 || t < best {
				best = t
			}
		}
		b.Logf("%s: daemon RSS %.1f MB, full pass (resolve --dry-run, best of 5) %v", label, rssMB, best.Round(time.Millisecond))
		return rssMB, best
	}
	rss0, pass0 := measure("no extra routes")

	// 100k public /24s (11.0.0.0 up, as in a full routing feed) via the
	// uplink, in table 100.
	batch := filepath.Join(b.TempDir(), "routes")
	var sb strings.Builder
	for i := range 100_000 {
		fmt.Fprintf(&sb, "route add %d.%d.%d.0/24 dev up-sc table 100\n", 11+i/65536, (i/256)%256, i%256)
	}
	if err := os.WriteFile(batch, []byte(sb.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	labkit.Run(b, "ip", "-batch", batch)
	b.Cleanup(func() { exec.Command("ip", "route", "flush", "table", "100").Run() })
	rss1, pass1 := measure("100k routes")
	b.ReportMetric(rss0, "MB-rss-idle")
	b.ReportMetric(rss1, "MB-rss-100k")
	b.ReportMetric(pass0.Seconds()*1000, "ms-pass-idle")
	b.ReportMetric(pass1.Seconds()*1000, "ms-pass-100k")
}

func rss(b *testing.B, pid int) float64 { return procStatus(b, pid, "VmRSS:") }

func procStatus(b *testing.B, pid int, key string) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == key {
			kb, _ := strconv.Atoi(f[1])
			return float64(kb) / 1024
		}
	}
	b.Fatal("no " + key)
	return 0
}

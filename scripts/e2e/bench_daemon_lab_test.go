//go:build lab

package e2e

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vnetguard/vnetguard/scripts/labkit"
)

// BenchmarkHookCost times one dispatcher run with 50 running libvirt
// networks and no conflict, for vnetguard's hook (no daemon: it does the
// whole check itself), a reference Python hook using libvirt's Python
// bindings doing the same check, and a do-nothing Go binary (the cost of
// starting any process). Run in the lab:
//
//	scripts/lab run -- go test -tags lab -run '^$' -bench HookCost -benchtime 1x ./scripts/e2e/
func BenchmarkHookCost(b *testing.B) {
	labkit.Require(b)
	const networks, runs = 50, 20
	for i := 0; i < networks; i++ {
		defineNetwork(b, netSpec{name: fmt.Sprintf("hc%02d", i), bridge: fmt.Sprintf("vbr-hc%02d", i), v4: fmt.Sprintf("10.77.%d", i), policy: "renumber"})
	}
	hook, noop, python := hookContenders(b)
	env := []string{"NM_DISPATCHER_ACTION=up", "DEVICE_IFACE=eth9", "DEVICE_IP_IFACE=eth9",
		"IP4_NUM_ADDRESSES=1", "IP4_ADDRESS_0=172.31.9.5/24 172.31.9.1", "IP4_NUM_ROUTES=0"}
	hookT := medianWall(b, runs, env, hook, "eth9", "up")
	pyT := medianWall(b, runs, env, "/usr/bin/python3", python)
	noopT := medianWall(b, runs, env, noop)
	b.ReportMetric(hookT.Seconds()*1000, "ms-hook")
	b.ReportMetric(pyT.Seconds()*1000, "ms-python-ref")
	b.ReportMetric(noopT.Seconds()*1000, "ms-noop-go")
	b.ReportMetric(float64(hookT)/float64(pyT), "hook/python")
	b.ReportMetric(float64(hookT)/float64(noopT), "hook/noop")
	b.Logf("median of %d runs with %d networks: vnetguard hook %v, Python reference %v, do-nothing Go %v",
		runs, networks, hookT.Round(time.Microsecond), pyT.Round(time.Microsecond), noopT.Round(time.Microsecond))
}

var logTime = regexp.MustCompile(`^time=(\S+) `)

// BenchmarkDaemonLatency: from an address added with ip (the netlink event)
// to the daemon starting its action, over 30 runs. An address over a
// running network is judged from the kernel's message and acted on at once
// (no debounce); each run restarts the network, which the daemon sees
// through libvirt's status file.
//
//	scripts/lab run -- go test -tags lab -run '^$' -bench DaemonLatency -benchtime 1x ./scripts/e2e/
func BenchmarkDaemonLatency(b *testing.B) {
	labkit.Require(b)
	const runs = 30
	d := dirs{cache: b.TempDir(), state: b.TempDir()}
	// No damping: each run is a fresh clash, not a flap.
	dm := startDaemon(b, d, writeConfig(b, "[watch]\ndamping-window=0s\n"))
	spec := netSpec{name: "lt", bridge: "vbr-lt", v4: "192.168.178", policy: "renumber"}
	defineNetwork(b, spec)
	labkit.NewUplink(b, "up-lt", "")
	// The daemon learns of the new network from libvirt's status file,
	// after its debounce: measure from a state it knows.
	time.Sleep(time.Second)
	home := netip.MustParsePrefix("192.168.178.0/24")
	var lat, gone []time.Duration
	for i := 0; i < runs; i++ {
		before := dm.count("msg=acting", "network=lt")
		t0 := time.Now()
		labkit.Run(b, "ip", "addr", "add", "192.168.178.50/24", "dev", "up-lt")
		// The host reaches the LAN again once the network's own route over
		// the same range is gone.
		for time.Since(t0) < 10*time.Second {
			out, _ := labkit.Try("ip", "-4", "route", "show", "192.168.178.0/24", "dev", spec.bridge)
			if strings.TrimSpace(out) == "" {
				break
			}
			time.Sleep(2 * time.Millisecond)
		}
		gone = append(gone, time.Since(t0))
		eventually(b, 10*time.Second, "the daemon to act", func() bool { return dm.count("msg=acting", "network=lt") > before })
		var acted time.Time
		for _, l := range dm.lines() {
			if strings.Contains(l, "msg=acting") && strings.Contains(l, "network=lt") {
				if m := logTime.FindStringSubmatch(l); m != nil {
					acted, _ = time.Parse(time.RFC3339Nano, m[1])
				}
			}
		}
		lat = append(lat, acted.Sub(t0))
		eventually(b, 10*time.Second, "the move", func() bool {
			p := liveSubnetQuiet(d, spec.name, true)
			return p.IsValid() && !p.Overlaps(home)
		})
		labkit.Run(b, "ip", "addr", "del", "192.168.178.50/24", "dev", "up-lt")
		virsh(b, "net-destroy", spec.name)
		virsh(b, "net-start", spec.name)
		time.Sleep(time.Second) // let the daemon's pass for the restart finish
	}
	slices.Sort(lat)
	p99 := lat[min(len(lat)-1, (len(lat)*99+99)/100-1)]
	b.ReportMetric(median(lat).Seconds()*1000, "ms-median")
	b.ReportMetric(p99.Seconds()*1000, "ms-p99")
	b.ReportMetric(float64(len(lat)), "runs")
	b.ReportMetric(median(gone).Seconds()*1000, "ms-route-gone-median")
	b.Logf("netlink event to action over %d runs: median %v, p99 %v (an address over a running network acts at once; the 300ms debounce is for other events); clash to the network's old route gone: median %v",
		runs, median(lat).Round(time.Millisecond), p99.Round(time.Millisecond), median(gone).Round(time.Millisecond))
}

// BenchmarkHookCostScale: the hook's cost with no conflict at 5, 50 and 500
// running libvirt networks (light ones: no DHCP, no DNS, so no dnsmasq per
// network), each next to the Python reference and a do-nothing Go binary
// measured in the same run; wall time, median of 20 (5 at 500). The hook
// reads libvirt's status files, so no libvirt process does work for it.
//
//	scripts/lab run -- go test -tags lab -run '^$' -bench HookCostScale -benchtime 1x -timeout 30m ./scripts/e2e/
func BenchmarkHookCostScale(b *testing.B) {
	labkit.Require(b)
	dir := b.TempDir()
	hook, noop, python := hookContenders(b)
	env := []string{"NM_DISPATCHER_ACTION=up", "DEVICE_IFACE=eth9", "DEVICE_IP_IFACE=eth9"}
	defined := 0
	for _, n := range []int{5, 50, 500} {
		for ; defined < n; defined++ {
			name := fmt.Sprintf("hs%03d", defined)
			meta := ""
			if defined >= 100 && defined < 100+clashRuns {
				// The ones the clash runs below move.
				meta = `<metadata><vnetguard:policy xmlns:vnetguard="urn:x-vnetguard:policy:1" on-conflict="renumber"/></metadata>`
			}
			xml := fmt.Sprintf("<network><name>%s</name>%s<bridge name='vbr-hs%03d'/><dns enable='no'/><ip address='10.%d.%d.1' prefix='24'/></network>",
				name, meta, defined, 100+defined/256, defined%256)
			f := filepath.Join(dir, name+".xml")
			os.WriteFile(f, []byte(xml), 0o644)
			labkit.Run(b, "virsh", "-q", "net-create", f)
			b.Cleanup(func() { exec.Command("virsh", "-q", "net-destroy", name).Run() })
		}
		runs := 20
		if n >= 500 {
			runs = 5
		}
		h, py, no := medianWall(b, runs, env, hook, "eth9", "up"), medianWall(b, runs, env, "/usr/bin/python3", python), medianWall(b, runs, env, noop)
		b.Logf("%d networks: vnetguard hook %v, Python reference %v (%.1fx cheaper), do-nothing Go %v",
			n, h.Round(10*time.Microsecond), py.Round(10*time.Microsecond), float64(py)/float64(h), no.Round(10*time.Microsecond))
		b.ReportMetric(h.Seconds()*1000, fmt.Sprintf("ms-hook-%d", n))
		b.ReportMetric(py.Seconds()*1000, fmt.Sprintf("ms-python-%d", n))
	}

	// One clash at 500 networks: an address lands on one network's subnet
	// and the hook, run for that uplink, moves the network (a libvirt
	// destroy and create); each run clashes with another network.
	var clashes []time.Duration
	for i := range clashRuns {
		name, subnet := fmt.Sprintf("hs%03d", 100+i), fmt.Sprintf("10.100.%d", 100+i)
		up := labkit.NewUplink(b, fmt.Sprintf("hsc%d", i), "")
		labkit.Run(b, "ip", "addr", "add", subnet+".5/24", "dev", up.Name)
		cenv := []string{"NM_DISPATCHER_ACTION=up", "DEVICE_IFACE=" + up.Name, "DEVICE_IP_IFACE=" + up.Name}
		clashes = append(clashes, medianWall(b, 1, cenv, hook, up.Name, "up"))
		if xml := virsh(b, "net-dumpxml", name); strings.Contains(xml, "'"+subnet+".1'") {
			b.Fatalf("the hook did not move %s off %s.0/24:\n%s", name, subnet, xml)
		}
	}
	c := median(clashes)
	b.Logf("one clash at 500 networks, hook run to network moved: median %v of %d (%v)", c.Round(time.Millisecond), clashRuns, clashes)
	b.ReportMetric(c.Seconds()*1000, "ms-hook-clash-500")
}

// clashRuns is how many clashes BenchmarkHookCostScale times at 500
// networks.
const clashRuns = 5

// hookContenders are what the hook-cost benchmarks time side by side:
// vnetguard's hook (a 90-vnetguard link to the binary), a do-nothing Go
// binary (the cost of any process start) and the Python reference hook.
func hookContenders(b *testing.B) (hook, noop, python string) {
	dir := b.TempDir()
	hook = filepath.Join(dir, "90-vnetguard")
	if err := os.Symlink(vnetguardBin, hook); err != nil {
		b.Fatal(err)
	}
	noop = filepath.Join(dir, "noop")
	os.WriteFile(filepath.Join(dir, "noop.go"), []byte("package main\nfunc main() {}\n"), 0o644)
	labkit.Run(b, "go", "build", "-o", noop, filepath.Join(dir, "noop.go"))
	_, self, _, _ := runtime.Caller(0)
	python = filepath.Join(filepath.Dir(filepath.Dir(self)), "bench", "reference-hook.py")
	return hook, noop, python
}

// medianWall is the median wall time of runs runs of argv with env added.
func medianWall(b *testing.B, runs int, env []string, argv ...string) time.Duration {
	var ds []time.Duration
	for range runs {
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Env = append(os.Environ(), env...)
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("%v: %v: %s", argv, err, out)
		}
		ds = append(ds, time.Since(start))
	}
	return median(ds)
}

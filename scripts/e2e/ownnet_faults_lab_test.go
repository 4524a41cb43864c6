//go:build lab

package e2e

import (
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vnetguard/vnetguard/nmhook/backend/profiles"
	"github.com/vnetguard/vnetguard/scripts/labkit"
)

// status reads a network of vnetguard's own from `vnetguard status`.
func (o ownNet) status(t *testing.T, name string) networkStatus {
	t.Helper()
	return statusOf(t, o.env(), o.d.flags("status", "--json", "--lock-dir", o.run), name)
}

// bridgeV4 is the bridge's IPv4 subnet as the kernel shows it.
func bridgeV4(br string) netip.Prefix {
	out, _ := labkit.Try("ip", "-4", "-o", "addr", "show", "dev", br, "scope", "global")
	for _, f := range strings.Fields(out) {
		if p, err := netip.ParsePrefix(f); err == nil {
			return p.Masked()
		}
	}
	return netip.Prefix{}
}

func nmCheckpoints(t *testing.T) string {
	return strings.TrimSpace(labkit.Run(t, "busctl", "get-property", "org.freedesktop.NetworkManager",
		"/org/freedesktop/NetworkManager", "org.freedesktop.NetworkManager", "Checkpoints"))
}

func ownKillRuns() int {
	if n, err := strconv.Atoi(os.Getenv("VNETGUARD_OWN_KILL_RUNS")); err == nil && n > 0 {
		return n
	}
	return 10
}

// `vnetguard resolve` renumbering a NAT network of vnetguard's own is
// killed with SIGKILL at each step of the renumber (right after the
// checkpoint is made, after the profile update, after the reapply, while
// confirming), then at random points (10 runs, VNETGUARD_OWN_KILL_RUNS
// sets the count); the next run finishes or rolls
// back what it left (intent, checkpoint), moves the network off the clash,
// and the guest re-leases there and reaches upstream through NAT. No
// intent and no NetworkManager checkpoint is ever left behind, and the
// bridge's kernel addresses always match the live subnet vnetguard reports.
func TestOwnNetKillNineMidRenumber(t *testing.T) {
	labkit.Require(t)
	o := newOwnNet(t)
	const name, br = "ownkill", "ownbr5"
	o.define(t, name, ownXML(name, br, "nat", "10.241.0", "", "renumber"))
	up := labkit.NewUplink(t, "upkill", "10.240.0.1/24")
	labkit.Run(t, "ip", "addr", "add", "10.240.0.2/24", "dev", up.Name)
	o.net(t, "start", name)
	t.Cleanup(func() { vnetguard(t, o.env(), "net", "stop", name, "--lock-dir", o.run) })
	g := labkit.NewGuest(t, "ogkill", br)
	g.WaitAddr(t, netip.MustParsePrefix("10.241.0.0/24"), 30*time.Second)
	labkit.NewUplink(t, "clkill", "")
	upstream := netip.MustParseAddr("10.240.0.1")
	intents := filepath.Join(o.run, "intents")

	// First at each step of a renumber (the process paused there), then
	// at random points.
	steps := []string{"checkpoint", "update", "reapply", "confirm"}
	runs := len(steps) + ownKillRuns()
	outcomes := map[string]int{}
	for i := range runs {
		live := bridgeV4(br)
		if !live.IsValid() {
			t.Fatalf("run %d: bridge %s has no IPv4 address", i, br)
		}
		// A clash on the live subnet (clash addresses accumulate: the
		// network is never moved back onto an earlier one).
		labkit.Run(t, "ip", "addr", "add", netip.PrefixFrom(live.Addr().Next().Next().Next().Next().Next(), live.Bits()).String(), "dev", "clkill")
		cmd := exec.Command(vnetguardBin, o.d.flags("resolve", "--lock-dir", o.run)...)
		cmd.Env = append(os.Environ(), o.env()...)
		// A clean resolve takes about 300 ms here.
		delay := time.Duration(rand.IntN(350)) * time.Millisecond
		at := "random"
		if i < len(steps) {
			at, delay = steps[i], 2*time.Second
			cmd.Env = append(cmd.Env, profiles.PauseEnv+"="+at)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(delay)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		left, _ := os.ReadDir(intents)
		// The next run: recovery first, then the clash (if still there).
		t0 := time.Now()
		r := vnetguard(t, o.env(), o.d.flags("resolve", "--lock-dir", o.run)...)
		took := time.Since(t0)
		what := "killed after it finished (or before it began)"
		switch {
		case len(left) > 0 && strings.Contains(r.stdout+r.stderr, "new subnets"):
			what = "finished by the next run"
		case len(left) > 0 && strings.Contains(r.stdout+r.stderr, "old subnets"):
			what = "rolled back by the next run"
		case len(left) > 0:
			what = "recovered by the next run"
		}
		outcomes[what]++
		t.Logf("run %d: killed at %s after %v, %s; next resolve %v exit %d: %s", i, at, delay, what, took.Round(time.Millisecond), r.code, strings.TrimSpace(r.stdout+r.stderr))
		if i < len(steps) && len(left) == 0 {
			t.Errorf("run %d: killed at %s but no intent was left", i, at)
		}
		if r.code != 0 {
			t.Fatalf("run %d: the next resolve exited %d: %s", i, r.code, r.stderr)
		}
		if ents, _ := os.ReadDir(intents); len(ents) != 0 {
			t.Fatalf("run %d: intents left after the next run: %v", i, ents)
		}
		if cps := nmCheckpoints(t); cps != "ao 0" {
			t.Fatalf("run %d: NetworkManager checkpoints left: %s", i, cps)
		}
		st := o.status(t, name)
		now := bridgeV4(br)
		if !st.Active || len(st.LiveSubnets) != 1 || st.LiveSubnets[0].Masked() != now {
			t.Fatalf("run %d: status says %+v, bridge has %s", i, st, now)
		}
		if now == live {
			t.Fatalf("run %d: still on the clashing subnet %s", i, live)
		}
		t1 := time.Now()
		a := g.WaitAddr(t, now, 30*time.Second)
		reached := false
		for range 10 {
			if g.Ping(t, upstream) == nil {
				reached = true
				break
			}
		}
		if !reached {
			t.Fatalf("run %d: guest (%s) cannot reach upstream %s", i, a, upstream)
		}
		t.Logf("run %d: guest re-leased %s and reached upstream %v after the next run", i, a, time.Since(t1).Round(time.Millisecond))
	}
	t.Logf("kill -9 of resolve at random points: %v", outcomes)
}

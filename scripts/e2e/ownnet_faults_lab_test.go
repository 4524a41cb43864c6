//go:build lab

package e2e

import (
	"fmt"
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
	return 6
}

// renumberSteps are the NetworkManager calls of a renumber, in order: the
// checkpoint made, the profile updated in memory, the new addresses
// reapplied, the checkpoint destroyed (confirming).
var renumberSteps = []string{"CheckpointCreate", "Update2", "Reapply", "CheckpointDestroy"}

// stepKill is where a fault test strikes: at a NetworkManager call of a
// renumber, seen on the system bus. frozen: the process is stopped the
// moment the call is seen, and killed once NetworkManager has had time to
// carry the call out; otherwise it is killed at once, the call in flight.
type stepKill struct {
	member string
	frozen bool
}

func (k stepKill) String() string {
	if k.frozen {
		return k.member + " (frozen, then killed)"
	}
	return k.member + " (in flight)"
}

// stepKills: every step, both ways.
func stepKills() []stepKill {
	var out []stepKill
	for _, m := range renumberSteps {
		out = append(out, stepKill{m, false}, stepKill{m, true})
	}
	return out
}

// killAtStep starts cmd and strikes it at k's call, seen from outside the
// process on the system bus; it fails the test if cmd ends without making
// the call.
func killAtStep(t *testing.T, cmd *exec.Cmd, k stepKill) {
	t.Helper()
	mon := labkit.MonitorBus(t, labkit.NMCalls)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sig := syscall.SIGKILL
	if k.frozen {
		sig = syscall.SIGSTOP
	}
	_, seen := mon.SignalAtCall(cmd.Process.Pid, k.member, sig, 20*time.Second)
	if seen && k.frozen {
		time.Sleep(300 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if !seen {
		t.Fatalf("%v never called NetworkManager's %s", cmd.Args, k.member)
	}
}

// `vnetguard resolve` renumbering a NAT network of vnetguard's own is
// killed with SIGKILL at each NetworkManager call of the renumber, as the
// system bus shows it (CheckpointCreate, Update2, Reapply,
// CheckpointDestroy; each once with the call in flight and once frozen
// until NetworkManager carried it out), then at random points (6 runs,
// VNETGUARD_OWN_KILL_RUNS sets the count); the next run finishes or rolls
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

	// First at each step of a renumber, then at random points.
	steps := stepKills()
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
			at, delay = steps[i].String(), 0
			killAtStep(t, cmd, steps[i])
		} else {
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(delay)
			cmd.Process.Signal(syscall.SIGKILL)
			cmd.Wait()
		}
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
		if at == "random" {
			at = fmt.Sprintf("a random point, after %v", delay)
		}
		t.Logf("run %d: killed at %s, %s; next resolve %v exit %d: %s", i, at, what, took.Round(time.Millisecond), r.code, strings.TrimSpace(r.stdout+r.stderr))
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

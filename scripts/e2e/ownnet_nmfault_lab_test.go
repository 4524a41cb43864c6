//go:build lab

package e2e

import (
	"bytes"
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vnetguard/vnetguard/scripts/labkit"
)

// nmFaultNet is a nat network of vnetguard's own that a test renumbers
// back and forth between two subnets while NetworkManager fails under it,
// with a guest on its bridge and an upstream router.
type nmFaultNet struct {
	o        ownNet
	name, br string
	a, b     netip.Prefix // its defined subnet, and the other
	g        *labkit.Guest
	upstream netip.Addr
}

func newNMFaultNet(t *testing.T, name, br, a, b, up string) *nmFaultNet {
	t.Helper()
	n := &nmFaultNet{o: newOwnNet(t), name: name, br: br,
		a: netip.MustParsePrefix(a + ".0/24"), b: netip.MustParsePrefix(b + ".0/24"),
		upstream: netip.MustParseAddr(up + ".1")}
	n.o.define(t, name, ownXML(name, br, "nat", a, "", "renumber"))
	u := labkit.NewUplink(t, "up"+name, up+".1/24")
	labkit.Run(t, "ip", "addr", "add", up+".2/24", "dev", u.Name)
	n.o.net(t, "start", name)
	t.Cleanup(func() { vnetguard(t, n.o.env(), "net", "stop", name, "--lock-dir", n.o.run) })
	n.g = labkit.NewGuest(t, "g"+name, br)
	n.g.WaitAddr(t, n.a, 30*time.Second)
	return n
}

// renumberCmd moves the network to the subnet it is not on, as a user
// would, giving up on NetworkManager after timeout.
func (n *nmFaultNet) renumberCmd(timeout string) *exec.Cmd {
	target := n.a
	if bridgeV4(n.br) == n.a {
		target = n.b
	}
	cmd := exec.Command(vnetguardBin, n.o.d.flags("renumber", n.name, "--ipv4", target.String(),
		"--timeout", timeout, "--lock-dir", n.o.run)...)
	cmd.Env = append(os.Environ(), n.o.env()...)
	return cmd
}

func (n *nmFaultNet) intents() []string {
	ents, _ := os.ReadDir(filepath.Join(n.o.run, "intents"))
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// coherent checks what a run after a fault must leave: no intent and no
// NetworkManager checkpoint; the bridge on one of the two subnets, the
// one vnetguard reports live; the profile still there, vnetguard's, with
// that subnet in memory and the defined one in its file; the firewall
// masquerading that subnet; and the guest leased on it, reaching upstream.
func (n *nmFaultNet) coherent(t *testing.T, run string) netip.Prefix {
	t.Helper()
	if left := n.intents(); len(left) != 0 {
		t.Fatalf("%s: intents left: %v", run, left)
	}
	if cps := nmCheckpoints(t); cps != "ao 0" {
		t.Fatalf("%s: NetworkManager checkpoints left: %s", run, cps)
	}
	now := bridgeV4(n.br)
	if now != n.a && now != n.b {
		t.Fatalf("%s: bridge %s on %s, neither %s nor %s", run, n.br, now, n.a, n.b)
	}
	st := n.o.status(t, n.name)
	if !st.Active || len(st.LiveSubnets) != 1 || st.LiveSubnets[0].Masked() != now {
		t.Fatalf("%s: status says %+v, bridge has %s", run, st, now)
	}
	prof := "vnetguard-" + n.name
	// A profile activated again may take a moment to report it.
	var got string
	want := now.Addr().Next().String() + "/24\nactivated\n"
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		got = labkit.Run(t, "nmcli", "-g", "ipv4.addresses,GENERAL.STATE", "connection", "show", prof)
		if got == want || time.Now().After(deadline) {
			break
		}
	}
	if got != want {
		t.Fatalf("%s: profile %s has %q, want %q", run, prof, got, want)
	}
	// Its file, in /etc, keeps the definition and vnetguard's mark.
	file := "/etc/NetworkManager/system-connections/" + prof + ".nmconnection"
	keyfile, err := os.ReadFile(file)
	if err != nil || !bytes.Contains(keyfile, []byte(n.a.Addr().Next().String()+"/24")) ||
		!bytes.Contains(keyfile, []byte("org.vnetguard.network")) {
		t.Fatalf("%s: the profile's file %s lost the defined %s or vnetguard's mark (%v):\n%s", run, file, n.a, err, keyfile)
	}
	if rules := labkit.Run(t, "nft", "list", "table", "inet", "vnetguard"); !strings.Contains(rules, "ip saddr "+now.String()) {
		t.Fatalf("%s: no rules for %s in:\n%s", run, now, rules)
	}
	t0 := time.Now()
	a := n.g.WaitAddr(t, now, 30*time.Second)
	if !pingUp(t, n.g, n.upstream) {
		t.Fatalf("%s: guest (%s) cannot reach upstream %s", run, a, n.upstream)
	}
	t.Logf("%s: coherent on %s; guest %s reached upstream %v later", run, now, a, time.Since(t0).Round(time.Millisecond))
	return now
}

// NetworkManager is killed (SIGKILL) at each NetworkManager call of a
// renumber of a nat network of vnetguard's own (CheckpointCreate,
// Update2, Reapply, CheckpointDestroy: the moment the system bus shows
// the call, so the call is lost, half done or done unanswered) and
// restarted. The interrupted run gives up with an error; the next run
// leaves the network coherent on one of its two subnets, the profile
// intact, and the guest leased there and reaching upstream.
func TestOwnNetNetworkManagerKilledMidRenumber(t *testing.T) {
	labkit.Require(t)
	n := newNMFaultNet(t, "nmkill", "ownbr14", "10.81.0", "10.82.0", "10.80.0")
	for _, step := range renumberSteps {
		run := "NetworkManager killed at " + step
		mon := labkit.MonitorBus(t, labkit.NMCalls)
		nmPID := labkit.PIDOf("NetworkManager")
		cmd := n.renumberCmd("20s")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		_, seen := mon.WaitCall(cmd.Process.Pid, step, 20*time.Second)
		if seen {
			syscall.Kill(nmPID, syscall.SIGKILL)
			labkit.Eventually(t, 15*time.Second, "NetworkManager to exit", func() bool { return labkit.Gone(nmPID) })
		}
		t0 := time.Now()
		err := cmd.Wait()
		if !seen {
			t.Fatalf("%s: vnetguard never called %s: %v\n%s", run, step, err, out.String())
		}
		t.Logf("%s: the renumber ended %v later (%v): %s", run, time.Since(t0).Round(time.Millisecond), err, strings.TrimSpace(out.String()))
		labkit.StartNetworkManager(t)
		r := vnetguard(t, n.o.env(), n.o.d.flags("resolve", "--lock-dir", n.o.run)...)
		if r.code != 0 {
			t.Fatalf("%s: the next resolve exited %d: %s", run, r.code, r.stderr)
		}
		if err == nil && len(n.intents()) == 0 && !bridgeV4(n.br).IsValid() {
			// The renumber had finished when NetworkManager died: no
			// change was in flight, and the restarted NetworkManager
			// dropped the network (the dead one's dnsmasq held its
			// address). It stays down until started again (README), and
			// net start works: it stops that orphan dnsmasq first. The
			// guest's port is plugged back as its runtime would.
			t.Logf("%s: the renumber had finished before NetworkManager died, and its restart dropped the network; net start", run)
			n.o.net(t, "start", n.name)
			labkit.Run(t, "ip", "link", "set", n.g.Port(), "master", n.br)
		}
		n.coherent(t, run)
	}
}

// NetworkManager is frozen (SIGSTOP) in the middle of a renumber: the
// moment vnetguard calls CheckpointCreate, Update2 or Reapply (it may
// still answer that call), and the moment it has answered the Reapply
// (before the renumber is confirmed: CheckpointDestroy). vnetguard gives
// up within its deadline (--timeout, at least 5 s once the change is
// under way) with an error that says NetworkManager did not answer, and
// leaves its intent for the next run. Once NetworkManager runs again
// (SIGCONT) that run finishes the renumber or rolls it back, and the
// network is coherent.
func TestOwnNetNetworkManagerFrozenMidRenumber(t *testing.T) {
	labkit.Require(t)
	n := newNMFaultNet(t, "nmstop", "ownbr15", "10.84.0", "10.85.0", "10.83.0")
	const timeout = 4 * time.Second
	for _, f := range []struct {
		member, when string
		answered     bool // frozen once it answered the call
	}{
		{"CheckpointCreate", "at CheckpointCreate", false},
		{"Update2", "at Update2", false},
		{"Reapply", "at Reapply", false},
		{"Reapply", "before confirming", true},
	} {
		step := f.member
		run := "NetworkManager frozen " + f.when
		mon := labkit.MonitorBus(t, append([]string{labkit.NMCalls}, labkit.NMAnswers...)...)
		nmPID := labkit.PIDOf("NetworkManager")
		cmd := n.renumberCmd(timeout.String())
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		start := time.Now()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		call, seen := mon.WaitCall(cmd.Process.Pid, step, 20*time.Second)
		if seen && f.answered {
			seen = mon.WaitAnswer(call, 10*time.Second)
		}
		if seen {
			syscall.Kill(nmPID, syscall.SIGSTOP)
		}
		thawed := false
		thaw := func() {
			if seen && !thawed {
				syscall.Kill(nmPID, syscall.SIGCONT)
				thawed = true
			}
		}
		t.Cleanup(thaw)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		var err error
		select {
		case err = <-done:
		case <-time.After(timeout + 10*time.Second):
			cmd.Process.Kill()
			<-done
			thaw()
			t.Fatalf("%s: vnetguard renumber --timeout %v still blocked after %v:\n%s", run, timeout, time.Since(start).Round(time.Millisecond), out.String())
		}
		took := time.Since(start)
		if !seen {
			t.Fatalf("%s: vnetguard never called %s (or NetworkManager never answered it): %v\n%s", run, step, err, out.String())
		}
		t.Logf("%s: vnetguard gave up after %v (%v): %s", run, took.Round(time.Millisecond), err, strings.TrimSpace(out.String()))
		var ee *exec.ExitError
		if err == nil || !errors.As(err, &ee) || ee.ExitCode() != 2 {
			t.Fatalf("%s: want exit status 2, got %v", run, err)
		}
		if !strings.Contains(out.String(), "did not answer") {
			t.Fatalf("%s: the error does not say NetworkManager did not answer:\n%s", run, out.String())
		}
		if left := n.intents(); len(left) == 0 {
			t.Fatalf("%s: no intent left pending while NetworkManager is frozen", run)
		}
		thaw()
		labkit.Eventually(t, 30*time.Second, "NetworkManager to answer again", func() bool {
			_, err := labkit.Try("nmcli", "-t", "general", "status")
			return err == nil
		})
		r := vnetguard(t, n.o.env(), n.o.d.flags("resolve", "--lock-dir", n.o.run)...)
		if r.code != 0 {
			t.Fatalf("%s: the next resolve exited %d: %s", run, r.code, r.stderr)
		}
		n.coherent(t, run)
	}
}

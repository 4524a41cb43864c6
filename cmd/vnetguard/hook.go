package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vnetguard/vnetguard/nmhook/config"
	"github.com/vnetguard/vnetguard/nmhook/dispatcher"
	"github.com/vnetguard/vnetguard/nmhook/guard"
	"github.com/vnetguard/vnetguard/nmhook/hostview"
	"github.com/vnetguard/vnetguard/nmhook/wake"
)

// hookDeadline bounds a dispatcher run whatever hangs (D-Bus, libvirtd, a
// disk): NetworkManager runs hooks one at a time, so a slow hook delays
// every other hook and event. NetworkManager's own limit is 600 s per
// script.
const hookDeadline = 10 * time.Second

// preUpDeadline bounds a pre-up or vpn-pre-up run: NetworkManager holds the
// connection back until it ends, so it is shorter. A renumber costs about
// 0.4 s; one still running at the deadline is handed over to a detached
// `vnetguard recover` and completes after the connection is up.
const preUpDeadline = 5 * time.Second

// hookMemoryLimit is the hook's soft heap limit, the only thing that makes
// its collector run (see hook).
const hookMemoryLimit = 64 << 20

func init() {
	register("hook", "NetworkManager dispatcher entry (installed as 90-vnetguard, also in pre-up.d)", runHookCmd)
}

// isDispatcherName tells whether we were started through a dispatcher link
// (…/dispatcher.d/90-vnetguard or …/dispatcher.d/pre-up.d/90-vnetguard)
// rather than as vnetguard.
func isDispatcherName(argv0 string) bool {
	base := argv0[strings.LastIndexByte(argv0, '/')+1:]
	return base != "vnetguard" && strings.HasSuffix(base, "-vnetguard")
}

func runHookCmd(env *runEnv, args []string) int {
	fs := newFlags(env, "hook", "[IFACE ACTION]", `
The NetworkManager dispatcher hook. NetworkManager runs it, as the links
/usr/lib/NetworkManager/dispatcher.d/90-vnetguard and
/usr/lib/NetworkManager/dispatcher.d/pre-up.d/90-vnetguard, with the
interface and action as arguments and the connection's addresses and routes
in the environment.

On pre-up and vpn-pre-up (the pre-up.d link) it runs one resolve pass
itself, within 5 s, even when the listener daemon runs: NetworkManager has
already applied the connection's addresses and routes (the VPN's, for
vpn-pre-up) but waits for the hook before it reports the connection
activated, so a clashing network has moved out of the way by the time
"nmcli connection up" returns and the up hooks run. On up, vpn-up,
dhcp4-change, dhcp6-change, reapply, connectivity-change, down and vpn-down
it wakes the listener daemon if one runs, else runs one resolve pass itself,
within 10 s. Other actions are ignored.

The addresses and routes in the environment are only a hint: the pass reads
the host's addresses and routes from the kernel (netlink) and acts on
nothing else. NetworkManager applies a configuration before it runs hooks
for it (for pre-up and vpn-pre-up too), so nothing is missed; an address or
route that only the environment lists is logged and ignored.

A network moved away is not moved back on down: it returns to its defined
subnet only when it is restarted and that subnet is free. Always exits 0.`)
	if code := parseFlags(env, fs, args); code >= 0 {
		return code
	}
	argv := append([]string{"vnetguard-hook"}, fs.Args()...)
	return hook(env, argv, os.Getenv)
}

// hook never fails: whatever happens, NetworkManager gets exit 0, and the
// reason goes to stderr (the journal).
func hook(env *runEnv, argv []string, getenv func(string) string) int {
	// A run lives milliseconds and makes a few MB of garbage at most: the
	// collector would only cost time. The soft limit still bounds a run
	// on a host with a huge routing table. GOGC and GOMEMLIMIT win.
	if getenv("GOGC") == "" && getenv("GOMEMLIMIT") == "" {
		debug.SetGCPercent(-1)
		debug.SetMemoryLimit(hookMemoryLimit)
	}
	log := slog.New(slog.NewTextHandler(env.stderr, nil)).With("component", "dispatcher")
	ev := dispatcher.Parse(argv, getenv)
	if len(ev.Dropped) > 0 {
		log.Warn("ignoring malformed dispatcher input", "dropped", ev.DroppedSummary())
	}
	if ev.Response == dispatcher.Ignore {
		return exitOK
	}
	deadline := hookDeadline
	if ev.Blocking() {
		// NetworkManager waits for this run: resolve here and now, even
		// when a daemon runs (it sees the same addresses over netlink
		// and finds the clash gone; per-network locks keep the two
		// apart).
		deadline = preUpDeadline
	} else {
		reason := fmt.Sprintf("%s %s", ev.Action, ev.Interface)
		if err := wake.Ring(wake.DefaultPath, reason); err == nil {
			log.Info("woke the listener daemon", "action", ev.Action, "interface", ev.Interface)
			return exitOK
		}
	}
	// A hard stop in case something below hangs past its context (a
	// frozen libvirtd). A change still in progress then is handed over to
	// a detached `vnetguard recover`, which waits for this process's locks
	// to go and carries the change through: a network is never left
	// stopped because NetworkManager's hook had to end. Armed before
	// anything that could take time, and stopped only after the guard is
	// closed (defers run last first).
	var running atomic.Pointer[guard.Guard]
	var handed sync.Once
	hand := func() {
		if g := running.Load(); g != nil {
			handed.Do(func() { handOver(log, g) })
		}
	}
	timer := time.AfterFunc(deadline, func() {
		hand()
		log.Error("deadline reached; giving up", "deadline", deadline)
		os.Exit(exitOK)
	})
	defer timer.Stop()

	o := resolverOptions{configPath: config.DefaultPath, runDir: "/run/vnetguard", timeout: deadline - time.Second}
	o.alloc = allocOptions{hypervisor: "auto", stateDir: "/var/lib/vnetguard", cacheDir: "/var/cache/vnetguard"}
	g, _, err := o.newGuard(log, false)
	if err != nil {
		log.Error("cannot start; doing nothing", "error", err)
		return exitOK
	}
	running.Store(g)
	defer g.Close()
	set := g.Settings()
	set.LockWait = 3 * time.Second // a daemon's renumber of the same network takes ~0.5 s
	set.RecoverTimeout = deadline / 2
	g.SetSettings(set)
	// The pass reads the host from netlink alone; what only the
	// environment claims is reported, never acted on.
	if len(ev.Host.Addresses)+len(ev.Host.Routes) > 0 {
		// Only prefixes are compared, and only the routes the
		// environment names: no link dump, the others left undecoded.
		claimed := make(map[netip.Prefix]bool, len(ev.Host.Routes))
		for _, r := range ev.Host.Routes {
			claimed[r.Dst.Masked()] = true
		}
		if view, err := hostview.ReadUnnamed(func(p netip.Prefix) bool { return claimed[p.Masked()] }); err == nil {
			if u := dispatcher.Unconfirmed(ev.Host, view); len(u.Addresses)+len(u.Routes) > 0 {
				log.Warn("the dispatcher environment lists what the host does not have; ignoring it",
					"action", ev.Action, "interface", ev.Interface, "unconfirmed", dispatcher.Describe(u, 8))
			}
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	outcomes, err := g.Pass(ctx)
	if err != nil {
		log.Error("resolve failed; nothing changed", "error", err)
	}
	ann := &announcer{log: log}
	ann.announce(outcomes)
	ann.close()
	for _, oc := range outcomes {
		log.Info("resolved", "network", oc.Network, "action", oc.Action, "moves", fmt.Sprint(oc.Moves), "note", oc.Note, "error", oc.Error)
	}
	if pendingChanges(g) {
		hand()
	}
	return exitOK
}

func pendingChanges(g *guard.Guard) bool {
	for _, b := range g.Backends {
		if names, err := b.Pending(); err == nil && len(names) > 0 {
			return true
		}
	}
	return false
}

// handOver starts `vnetguard recover` detached from this process, so that
// it outlives the dispatcher's run: under systemd as a transient unit of
// its own (the dispatcher service's cgroup is killed when it stops), else
// in a new session. It is a no-op when nothing is pending.
func handOver(log *slog.Logger, g *guard.Guard) {
	if !pendingChanges(g) {
		return
	}
	self, err := os.Executable()
	if err != nil {
		log.Error("cannot hand over an unfinished change", "error", err)
		return
	}
	args := []string{self, "recover", "--wait-lock", "1m", "--retry-for", "30m"}
	var cmd *exec.Cmd
	if fi, err := os.Stat("/run/systemd/system"); err == nil && fi.IsDir() {
		if run, err := exec.LookPath("systemd-run"); err == nil {
			cmd = exec.Command(run, append([]string{"--no-block", "--collect", "--quiet",
				"--unit", fmt.Sprintf("vnetguard-recover-%d", os.Getpid())}, args...)...)
		}
	}
	if cmd == nil {
		cmd = exec.Command(args[0], args[1:]...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	}
	// No inherited pipes: NetworkManager's dispatcher must not wait for
	// the child's output to end.
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, nil, nil
	if err := cmd.Start(); err != nil {
		log.Error("cannot hand over an unfinished change", "error", err)
		return
	}
	log.Warn("handed an unfinished change over to vnetguard recover", "pid", cmd.Process.Pid)
	cmd.Process.Release()
}

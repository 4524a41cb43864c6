package main

import (
	"context"
	"os"
	"os/signal"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/vnetguard/vnetguard/nmhook/backend/libvirt"
	"github.com/vnetguard/vnetguard/nmhook/listener"
	"github.com/vnetguard/vnetguard/nmhook/logging"
	"github.com/vnetguard/vnetguard/nmhook/wake"
)

// daemonMemoryLimit is the daemon's soft heap limit (runtime/debug).
const daemonMemoryLimit = 24 << 20

// recoverRetry is how soon a pass runs again while an unfinished change
// could not be finished (libvirtd down or frozen, a start refused).
const recoverRetry = 3 * time.Second

func init() {
	register("watch", "the listener daemon: resolve clashes as host changes happen", runWatch)
}

func runWatch(env *runEnv, args []string) int {
	fs := newFlags(env, "watch", "[--config FILE] [--wake-socket PATH]", `
Run until stopped, resolving clashes as they appear. Kernel netlink events
(addresses, routes of every table, policy rules, links, IPv6 prefixes) are
the ground truth; libvirt's network status files (a network started,
renumbered or stopped, seen through inotify), NetworkManager's D-Bus
signals, libvirt's D-Bus events and the dispatcher hook's wake-ups are
hints. An address or route that
overlaps a running virtual network (judged from the kernel's message alone)
starts a pass at once; other events are debounced ([watch] debounce, 300ms
by default: one pass after a burst sees the settled state), and so are
further clashing changes within a debounce of the last pass. Every pass
re-reads and re-checks everything before acting. A network moves at most once per
[watch] damping-window (10s) and never back onto a subnet it just left.
Changes on virtual networks' own bridges and ports are ignored. At start and
before every pass, a change that an interrupted vnetguard run left half done
is completed or undone. When libvirt is not up yet, passes are retried
until it is. SIGHUP reloads the configuration; SIGTERM stops. Tells systemd
when ready (after the first pass).`)
	var o resolverOptions
	socket := fs.String("wake-socket", wake.DefaultPath, "the socket the dispatcher hook rings")
	o.register(fs)
	if code := parseFlags(env, fs, args); code >= 0 {
		return code
	}
	log := logging.New(env.stderr)
	// A long-running daemon keeps little (the last read's small index),
	// but a pass on a host with a full routing table makes tens of MB of
	// short-lived garbage: a soft limit makes the collector return it
	// rather than let the heap grow to twice the peak. GOMEMLIMIT wins.
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(daemonMemoryLimit)
	}
	g, cfg, err := o.newGuard(log, false)
	if err != nil {
		return fail(env, "watch", err)
	}
	defer g.Close()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	bell, err := wake.Listen(*socket)
	if err != nil {
		return fail(env, "watch", err)
	}

	// Every goroutine started here is joined before watch returns: they
	// end with ctx, and the doorbell's with bell.Close.
	var wg sync.WaitGroup
	defer func() {
		stop()
		bell.Close()
		wg.Wait()
	}()
	events := make(chan string, 64)
	urgent := make(chan string, 1)
	wake := func(why string) {
		select {
		case events <- why:
		default: // a pass is due anyway
		}
	}
	wg.Go(func() {
		listener.WatchNetlink(ctx, events, urgent, listener.Filter{Own: g.Own, Threatens: g.Threatens}, log)
	})
	wg.Go(func() { listener.WatchDBus(ctx, events, log) })
	wg.Go(func() { listener.WatchStatusDir(ctx, libvirt.StatusDir, events, log) })
	wg.Go(func() {
		for reason := range bell.Rings() {
			wake("dispatcher: " + reason)
		}
	})
	// SIGHUP asks for a reload, done between passes so a pass never sees
	// a half-changed configuration.
	var reloadMu sync.Mutex
	reloadWanted := false
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				reloadMu.Lock()
				reloadWanted = true
				reloadMu.Unlock()
				wake("reload requested")
			}
		}
	})
	wake("start")

	// Every action is announced on the system bus for notify-agent.
	ann := &announcer{log: log}
	defer ann.close()
	ready := false
	failing := false
	pass := func(ctx context.Context, reason string) time.Duration {
		reloadMu.Lock()
		reload := reloadWanted
		reloadWanted = false
		reloadMu.Unlock()
		if reload {
			// The same assembly as at start: flags over the file.
			if set, _, err := o.settings(false); err != nil {
				log.Error("configuration not reloaded; keeping the old one", "error", err)
			} else {
				g.SetSettings(set)
				log.Info("configuration reloaded", "file", o.configPath)
			}
		}
		start := time.Now()
		pctx, cancel := context.WithTimeout(ctx, o.timeout)
		defer cancel()
		outcomes, err := g.Pass(pctx)
		if err != nil {
			// libvirt or the bus not up yet (at boot), or gone: retry with
			// backoff, logging once until it works again.
			if !failing {
				log.Error("pass failed; nothing changed; retrying", "cause", reason, "error", err)
				failing = true
			}
			return 2 * time.Second
		}
		if failing {
			log.Info("passes work again")
			failing = false
		}
		if !ready {
			daemon.SdNotify(false, daemon.SdNotifyReady)
			ready = true
			log.Info("listening", "wake_socket", *socket)
		}
		ann.announce(outcomes)
		log.Info("checked", "trigger", reason, "acted_on", len(outcomes), "took", time.Since(start).Round(time.Millisecond))
		var again time.Duration
		for _, oc := range outcomes {
			if oc.Action != "none" || oc.Error != "" || oc.Note != "" {
				log.Info("pass", "network", oc.Network, "action", oc.Action, "note", oc.Note,
					"error", oc.Error, "trigger", reason, "took", time.Since(start).Round(time.Millisecond))
			}
			retry := oc.RetryIn
			if oc.Action == "recover" && (oc.Error != "" || oc.Deferred) {
				// An unfinished change is retried on a timer, not only
				// when the host next changes: a stopped network must not
				// wait for an unrelated event.
				retry = recoverRetry
			}
			if retry > 0 && (again == 0 || retry < again) {
				again = retry
			}
		}
		return again
	}
	listener.Run(ctx, listener.Config{Debounce: cfg.Debounce, Log: log}, events, urgent, pass)
	log.Info("stopping")
	return exitOK
}

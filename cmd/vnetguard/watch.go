package main

import (
	"context"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/vnetguard/vnetguard/nmhook/config"
	"github.com/vnetguard/vnetguard/nmhook/guard"
	"github.com/vnetguard/vnetguard/nmhook/listener"
	"github.com/vnetguard/vnetguard/nmhook/logging"
	"github.com/vnetguard/vnetguard/nmhook/wake"
)

func init() {
	register("watch", "the listener daemon: resolve clashes as host changes happen", runWatch)
}

func runWatch(env *runEnv, args []string) int {
	fs := newFlags(env, "watch", "[--config FILE] [--wake-socket PATH]", `
Run until stopped, resolving clashes as they appear. Kernel netlink events
(addresses, routes of every table, policy rules, links, IPv6 prefixes) are
the ground truth; NetworkManager's D-Bus signals, libvirt's network events
and the dispatcher hook's wake-ups are hints. Every event only wakes a full
re-read. Events are debounced ([watch] debounce, 300ms by default: one pass
after a burst sees the settled state); a network moves at most once per
[watch] damping-window (10s) and never back onto a subnet it just left.
Changes on virtual networks' own bridges and ports are ignored. SIGHUP
reloads the configuration; SIGTERM stops. Tells systemd when ready.`)
	var o resolverOptions
	socket := fs.String("wake-socket", wake.DefaultPath, "the socket the dispatcher hook rings")
	o.register(fs)
	if code := parseFlags(env, fs, args); code >= 0 {
		return code
	}
	log := logging.New(env.stderr)
	r, client, err := o.newResolver(env, false)
	if err != nil {
		return fail(env, "watch", explainLibvirt(err))
	}
	defer client.Close()
	r.Config.Log = log
	r.Config.DampingWindow = o.cfg.DampingWindow

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	bell, err := wake.Listen(*socket)
	if err != nil {
		return fail(env, "watch", err)
	}
	defer bell.Close()

	events := make(chan string, 64)
	go listener.WatchNetlink(ctx, events, r.Own, log)
	go listener.WatchDBus(ctx, events, log)
	go func() {
		for reason := range bell.Rings() {
			select {
			case events <- "dispatcher: " + reason:
			default:
			}
		}
	}()
	// SIGHUP asks for a reload, done between passes so a pass never sees
	// a half-changed configuration.
	var reloadWanted atomic.Bool
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		for range hup {
			reloadWanted.Store(true)
			select {
			case events <- "reload requested":
			default:
			}
		}
	}()

	ready := false
	pass := func(ctx context.Context, reason string) time.Duration {
		if reloadWanted.Swap(false) {
			if err := reloadConfig(&o, r); err != nil {
				log.Error("configuration not reloaded; keeping the old one", "error", err)
			} else {
				log.Info("configuration reloaded", "file", o.configPath)
			}
		}
		start := time.Now()
		pctx, cancel := context.WithTimeout(ctx, o.timeout)
		defer cancel()
		outcomes, err := r.Pass(pctx)
		if !ready {
			daemon.SdNotify(false, daemon.SdNotifyReady)
			ready = true
			log.Info("listening", "wake_socket", *socket)
		}
		if err != nil {
			log.Error("pass failed; nothing changed", "cause", reason, "error", err)
			return 0
		}
		log.Info("checked", "trigger", reason, "clashing", len(outcomes), "took", time.Since(start).Round(time.Millisecond))
		var again time.Duration
		for _, oc := range outcomes {
			if oc.Action != "none" || oc.Error != "" || oc.Note != "" {
				log.Info("pass", "network", oc.Network, "action", oc.Action, "note", oc.Note,
					"error", oc.Error, "trigger", reason, "took", time.Since(start).Round(time.Millisecond))
			}
			if oc.RetryIn > 0 && (again == 0 || oc.RetryIn < again) {
				again = oc.RetryIn
			}
		}
		return again
	}
	listener.Run(ctx, listener.Config{Debounce: o.cfg.Debounce, Log: log}, events, pass)
	log.Info("stopping")
	return exitOK
}

// reloadConfig re-reads the configuration file into a running resolver.
// The hypervisor direction and IPv6 on/off are read at start only.
func reloadConfig(o *resolverOptions, r *guard.Resolver) error {
	cfg, err := config.Load(o.configPath)
	if err != nil {
		return err
	}
	var reserved []netip.Prefix
	for _, s := range o.alloc.reserved {
		p, err := parseCIDR(s)
		if err != nil {
			return err
		}
		reserved = append(reserved, p)
	}
	o.cfg = cfg
	if !o.changed("default-policy") {
		r.Config.DefaultPolicy = cfg.DefaultPolicy
	}
	r.Config.Ignore = append(slices.Clone(o.ignore), cfg.Ignore...)
	r.Config.Reserved = append(reserved, cfg.Reserved...)
	r.Config.Pools = cfg.Pools4
	r.Config.DampingWindow = cfg.DampingWindow
	return nil
}

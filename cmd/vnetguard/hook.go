package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/vnetguard/vnetguard/nmhook/config"
	"github.com/vnetguard/vnetguard/nmhook/guard"
	"github.com/vnetguard/vnetguard/nmhook/dispatcher"
	"github.com/vnetguard/vnetguard/nmhook/wake"
)

// hookDeadline bounds a dispatcher run whatever hangs (D-Bus, libvirtd, a
// disk): NetworkManager runs hooks one at a time, so a slow hook delays
// every other hook and event.
const hookDeadline = 10 * time.Second

func init() {
	register("hook", "NetworkManager dispatcher entry (installed as 90-vnetguard)", runHookCmd)
}

// isDispatcherName tells whether we were started through the dispatcher
// link (…/dispatcher.d/90-vnetguard) rather than as vnetguard.
func isDispatcherName(argv0 string) bool {
	base := argv0[strings.LastIndexByte(argv0, '/')+1:]
	return base != "vnetguard" && strings.HasSuffix(base, "-vnetguard")
}

func runHookCmd(env *runEnv, args []string) int {
	fs := newFlags(env, "hook", "[IFACE ACTION]", `
The NetworkManager dispatcher hook. NetworkManager runs it (as the link
/usr/lib/NetworkManager/dispatcher.d/90-vnetguard) with the interface and
action as arguments and the connection's addresses and routes in the
environment. On up, vpn-up, dhcp4-change, dhcp6-change, reapply,
connectivity-change, down and vpn-down it wakes the listener daemon if one
runs, else runs one resolve pass itself; other actions are ignored. A network
moved away is not moved back on down: it returns to its defined subnet only
when it is restarted and that subnet is free. Always exits 0, within 10 s.`)
	if code := parseFlags(env, fs, args); code >= 0 {
		return code
	}
	argv := append([]string{"vnetguard-hook"}, fs.Args()...)
	return hook(env, argv, os.Getenv)
}

// hook never fails: whatever happens, NetworkManager gets exit 0, and the
// reason goes to stderr (the journal).
func hook(env *runEnv, argv []string, getenv func(string) string) int {
	log := slog.New(slog.NewTextHandler(env.stderr, nil)).With("component", "dispatcher")
	ev := dispatcher.Parse(argv, getenv)
	if len(ev.Dropped) > 0 {
		log.Warn("ignoring malformed dispatcher input", "dropped", ev.DroppedSummary())
	}
	if ev.Response == dispatcher.Ignore {
		return exitOK
	}
	// A hard stop in case something below ignores its context.
	timer := time.AfterFunc(hookDeadline, func() {
		log.Error("deadline reached; giving up", "deadline", hookDeadline)
		os.Exit(exitOK)
	})
	defer timer.Stop()

	reason := fmt.Sprintf("%s %s", ev.Action, ev.Interface)
	if err := wake.Ring(wake.DefaultPath, reason); err == nil {
		log.Info("woke the listener daemon", "action", ev.Action, "interface", ev.Interface)
		return exitOK
	}
	o := resolverOptions{configPath: config.DefaultPath, lockDir: "/run/vnetguard", timeout: hookDeadline - time.Second}
	o.alloc = allocOptions{stateDir: "/var/lib/vnetguard", cacheDir: "/var/cache/vnetguard"}
	r, client, err := o.newResolver(env, false)
	if err != nil {
		log.Error("cannot start; doing nothing", "error", err)
		return exitOK
	}
	defer client.Close()
	r.Config.LockWait = 3 * time.Second
	r.Config.DampingWindow = o.cfg.DampingWindow
	r.Config.Log = log
	r.Host = guard.WithExtra{Host: r.Host, Extra: ev.Host}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	outcomes, err := r.Pass(ctx)
	if err != nil {
		log.Error("resolve failed; nothing changed", "error", err)
		return exitOK
	}
	for _, oc := range outcomes {
		log.Info("resolved", "network", oc.Network, "action", oc.Action, "moves", fmt.Sprint(oc.Moves), "error", oc.Error)
	}
	return exitOK
}

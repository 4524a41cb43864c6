package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/godbus/dbus/v5"

	"github.com/vnetguard/vnetguard/nmhook/guard"
	"github.com/vnetguard/vnetguard/nmhook/notify"
)

func init() {
	register("notify-agent", "desktop notifications of what vnetguard did (run in the user's session)", runNotifyAgent)
}

const (
	notificationsName  = "org.freedesktop.Notifications"
	notificationsPath  = dbus.ObjectPath("/org/freedesktop/Notifications")
	notificationsIface = "org.freedesktop.Notifications"
	detailsAction      = "details"
)

func runNotifyAgent(env *runEnv, args []string) int {
	fs := newFlags(env, "notify-agent", "", `
Listen on the system bus for vnetguard's signal (`+notify.Interface+`.`+notify.Member+` on
`+string(notify.Path)+`), sent for every action on a virtual network, and show each
as a desktop notification (org.freedesktop.Notifications on the session
bus) in plain words, with a "Details" action. Started in the user's session
by /etc/xdg/autostart or the systemd user unit vnetguard-notify-agent.service;
needs no privilege. The buses are the usual ones (DBUS_SYSTEM_BUS_ADDRESS and
DBUS_SESSION_BUS_ADDRESS are honoured). Runs until SIGINT or SIGTERM.`)
	icon := fs.String("icon", "network-wired", "the notifications' icon name")
	if code := parseFlags(env, fs, args); code >= 0 {
		return code
	}
	if fs.NArg() > 0 {
		return fail(env, "notify-agent", fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sys, err := dbus.ConnectSystemBus()
	if err != nil {
		return fail(env, "notify-agent", fmt.Errorf("system bus: %w", err))
	}
	defer sys.Close()
	sess, err := dbus.ConnectSessionBus()
	if err != nil {
		return fail(env, "notify-agent", fmt.Errorf("session bus: %w", err))
	}
	defer sess.Close()
	if err := sys.AddMatchSignal(notify.MatchOptions()...); err != nil {
		return fail(env, "notify-agent", fmt.Errorf("system bus: %w", err))
	}
	if err := sess.AddMatchSignal(dbus.WithMatchObjectPath(notificationsPath), dbus.WithMatchInterface(notificationsIface)); err != nil {
		return fail(env, "notify-agent", fmt.Errorf("session bus: %w", err))
	}
	events := make(chan *dbus.Signal, 64)
	sys.Signal(events)
	actions := make(chan *dbus.Signal, 64)
	sess.Signal(actions)
	fmt.Fprintln(env.stdout, "notify-agent: listening")

	shown := map[uint32]notify.Event{}
	show := func(summary, body string, withDetails bool) (uint32, error) {
		var acts []string
		if withDetails {
			acts = []string{detailsAction, "Details"}
		}
		var id uint32
		err := sess.Object(notificationsName, notificationsPath).CallWithContext(ctx, notificationsIface+".Notify", 0,
			"vnetguard", uint32(0), *icon, summary, body, acts,
			map[string]dbus.Variant{"urgency": dbus.MakeVariant(byte(1)), "category": dbus.MakeVariant("network")},
			int32(-1)).Store(&id)
		return id, err
	}
	for {
		select {
		case <-ctx.Done():
			return exitOK
		case s, ok := <-events:
			if !ok {
				return fail(env, "notify-agent", fmt.Errorf("system bus connection closed"))
			}
			e, ok := notify.Parse(s)
			if !ok {
				continue
			}
			summary, body := notify.Message(e)
			id, err := show(summary, body, true)
			if err != nil {
				fmt.Fprintf(env.stderr, "vnetguard notify-agent: cannot show a notification: %v\n", err)
				continue
			}
			fmt.Fprintf(env.stdout, "notify-agent: shown %d: %s\n", id, body)
			shown[id] = e
		case s, ok := <-actions:
			if !ok {
				return fail(env, "notify-agent", fmt.Errorf("session bus connection closed"))
			}
			if len(s.Body) < 1 {
				continue
			}
			id, _ := s.Body[0].(uint32)
			switch s.Name {
			case notificationsIface + ".ActionInvoked":
				key, _ := s.Body[len(s.Body)-1].(string)
				if e, ok := shown[id]; ok && key == detailsAction {
					if _, err := show("vnetguard: virtual network '"+e.Network+"'", notify.Details(e), false); err != nil {
						fmt.Fprintf(env.stderr, "vnetguard notify-agent: cannot show details: %v\n", err)
					}
				}
			case notificationsIface + ".NotificationClosed":
				delete(shown, id)
			}
		}
	}
}

// notifyEvents turns a pass's outcomes into the signal's events: one per
// action taken (renumber, destroy, warn), with the first conflict as the
// cause. For the daemon and the hook to emit with notify.Emit.
func notifyEvents(outcomes []guard.Outcome) []notify.Event {
	var out []notify.Event
	for _, oc := range outcomes {
		switch oc.Action {
		case "renumber", "destroy", "warn":
		default:
			continue
		}
		if oc.DryRun || oc.Error != "" || oc.Repeat {
			continue
		}
		e := notify.Event{Network: oc.Network, Backend: oc.Backend, Action: oc.Action}
		for _, m := range oc.Moves {
			e.OldSubnets = append(e.OldSubnets, m.From.String())
			if oc.Action == "renumber" {
				e.NewSubnets = append(e.NewSubnets, m.To.String())
			}
		}
		if len(oc.Conflicts) > 0 {
			c := oc.Conflicts[0]
			e.Cause, e.Interface = c.Host.Masked().String(), c.Interface
			if len(e.OldSubnets) == 0 {
				for _, c := range oc.Conflicts {
					e.OldSubnets = append(e.OldSubnets, c.Subnet.String())
				}
			}
		}
		out = append(out, e)
	}
	return out
}

// announcer emits the daemon's and the hook's actions on the system bus,
// for notify-agent. The bus is dialled when there is something to say; no
// bus is no error (a server, or early boot): the journal has it all.
type announcer struct {
	log  *slog.Logger
	conn *dbus.Conn
}

func (a *announcer) announce(outcomes []guard.Outcome) {
	events := notifyEvents(outcomes)
	if len(events) == 0 {
		return
	}
	if a.conn == nil || !a.conn.Connected() {
		conn, err := dbus.ConnectSystemBus()
		if err != nil {
			a.log.Debug("no system bus; actions not announced", "error", err)
			return
		}
		a.conn = conn
	}
	for _, e := range events {
		if err := notify.Emit(a.conn, e); err != nil {
			a.log.Debug("announcing an action failed", "network", e.Network, "error", err)
		}
	}
}

func (a *announcer) close() {
	if a.conn != nil {
		a.conn.Close()
	}
}

package listener

import (
	"context"
	"log/slog"
	"time"

	"github.com/godbus/dbus/v5"
)

// Bus names whose signals are hints worth a re-read.
const (
	nmBus      = "org.freedesktop.NetworkManager"
	libvirtBus = "org.libvirt"
)

// WatchDBus turns NetworkManager's signals (device states, IP4Config and
// IP6Config changes, active connections), libvirt's NetworkEvent and either
// service appearing on the bus (a restart) into wake-ups. It reconnects when
// the bus goes away. A libvirt network started onto a clashing subnet is
// seen through its NetworkEvent at once.
func WatchDBus(ctx context.Context, events chan<- string, log *slog.Logger) {
	for ctx.Err() == nil {
		if err := watchOnce(ctx, events, log); err != nil && ctx.Err() == nil {
			log.Warn("D-Bus watch interrupted; reconnecting", "error", err)
		}
		sleep(ctx, time.Second)
	}
}

func watchOnce(ctx context.Context, events chan<- string, log *slog.Logger) error {
	// A sequential handler keeps signals in order; a private connection
	// keeps our matches apart from other users of the shared bus.
	conn, err := dbus.SystemBusPrivate(dbus.WithSignalHandler(dbus.NewSequentialSignalHandler()))
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.Auth(nil); err != nil {
		return err
	}
	if err := conn.Hello(); err != nil {
		return err
	}
	// Only NetworkManager's small state signals: its IP4Config/IP6Config
	// PropertiesChanged carry every address and route of a device (a
	// device with a full routing table made one signal of tens of MB), and
	// netlink reports those changes anyway.
	const nm = "org.freedesktop.NetworkManager"
	matches := [][]dbus.MatchOption{
		{dbus.WithMatchSender(nmBus), dbus.WithMatchInterface(nm), dbus.WithMatchMember("StateChanged")},
		{dbus.WithMatchSender(nmBus), dbus.WithMatchInterface(nm + ".Device"), dbus.WithMatchMember("StateChanged")},
		{dbus.WithMatchSender(nmBus), dbus.WithMatchInterface(nm + ".Connection.Active"), dbus.WithMatchMember("StateChanged")},
		{dbus.WithMatchSender(nmBus), dbus.WithMatchInterface(nm + ".VPN.Connection"), dbus.WithMatchMember("VpnStateChanged")},
		{dbus.WithMatchSender(libvirtBus), dbus.WithMatchInterface("org.libvirt.Connect"), dbus.WithMatchMember("NetworkEvent")},
		{dbus.WithMatchInterface("org.freedesktop.DBus"), dbus.WithMatchMember("NameOwnerChanged"), dbus.WithMatchArg(0, nmBus)},
		{dbus.WithMatchInterface("org.freedesktop.DBus"), dbus.WithMatchMember("NameOwnerChanged"), dbus.WithMatchArg(0, libvirtBus)},
	}
	for _, m := range matches {
		if err := conn.AddMatchSignalContext(ctx, m...); err != nil {
			return err
		}
	}
	sigs := make(chan *dbus.Signal, 256)
	conn.Signal(sigs)
	// libvirt-dbus's NetworkEvent is only a hint when it runs: libvirt's
	// status files (WatchStatusDir) are watched, so it is not started here.
	wake(events, "D-Bus connected")
	log.Info("watching NetworkManager and libvirt on D-Bus")
	for {
		select {
		case <-ctx.Done():
			return nil
		case s, ok := <-sigs:
			if !ok {
				return errBusClosed
			}
			if why, ok := dbusReason(s); ok {
				wake(events, why)
			}
		}
	}
}

type busError string

func (e busError) Error() string { return string(e) }

const errBusClosed = busError("system bus connection closed")

// dbusReason filters the signals that can change addressing.
func dbusReason(s *dbus.Signal) (string, bool) {
	switch s.Name {
	case "org.libvirt.Connect.NetworkEvent":
		return "libvirt network event", true
	case "org.freedesktop.DBus.NameOwnerChanged":
		if len(s.Body) == 3 {
			name, _ := s.Body[0].(string)
			newOwner, _ := s.Body[2].(string)
			if newOwner != "" {
				return name + " (re)started", true
			}
			return name + " stopped", false
		}
	case "org.freedesktop.NetworkManager.Device.StateChanged",
		"org.freedesktop.NetworkManager.StateChanged",
		"org.freedesktop.NetworkManager.ActiveConnection.StateChanged",
		"org.freedesktop.NetworkManager.VPN.Connection.VpnStateChanged":
		return "NetworkManager " + s.Name[len("org.freedesktop.NetworkManager."):], true
	}
	return "", false
}

// Package nm is a thin client for the NetworkManager D-Bus calls vnetguard
// needs: connection profiles (AddConnection2, Update2, Delete, GetSettings),
// activation (ActivateConnection, DeactivateConnection), devices
// (GetDeviceByIpIface, Reapply, GetAppliedConnection, State) and
// checkpoints (CheckpointCreate, CheckpointRollback, CheckpointDestroy).
//
// It calls godbus directly rather than github.com/Wifx/gonetworkmanager:
// that module is not served by the Go module proxy here, it lacks
// AddConnection2 and Update2, and its signal subscriptions neither filter
// by path nor report the right field. Every method is one D-Bus call (or a
// property read) with the error naming the call; there is no caching, so
// what a method returns is what NetworkManager says now.
package nm

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/godbus/dbus/v5"
)

const (
	busName      = "org.freedesktop.NetworkManager"
	rootPath     = dbus.ObjectPath("/org/freedesktop/NetworkManager")
	settingsPath = dbus.ObjectPath("/org/freedesktop/NetworkManager/Settings")
	ifaceNM      = busName
	ifaceSet     = busName + ".Settings"
	ifaceConn    = busName + ".Settings.Connection"
	ifaceDev     = busName + ".Device"
	ifaceActive  = busName + ".Connection.Active"
)

// ErrUnavailable: NetworkManager is not on the system bus (or there is no
// bus). Callers that can do without it check for this.
var ErrUnavailable = errors.New("NetworkManager is not running")

// ErrNoAnswer: NetworkManager did not answer a call in time (stopped or
// hung). The call may still be carried out once it answers again: D-Bus
// queues it.
var ErrNoAnswer = errors.New("NetworkManager did not answer")

// DefaultCallTimeout bounds every call and property read that the caller's
// context does not bound sooner: libdbus's default, so that a hung
// NetworkManager never blocks vnetguard for ever.
const DefaultCallTimeout = 25 * time.Second

// Lost tells whether err says NetworkManager may have received a call
// without vnetguard learning what became of it: it did not answer in time
// (ErrNoAnswer), or it left the bus before answering (it died: the bus's
// NoReply), so whatever the call asked for may or may not have happened.
func Lost(err error) bool {
	var de dbus.Error
	return errors.Is(err, ErrNoAnswer) || errors.As(err, &de) && de.Name == "org.freedesktop.DBus.Error.NoReply"
}

// Settings is a connection profile as NetworkManager's D-Bus API carries it:
// setting name -> property -> value.
type Settings map[string]map[string]dbus.Variant

// Update2 and AddConnection2 flags (NMSettingsUpdate2Flags,
// NMSettingsAddConnection2Flags).
const (
	ToDisk           uint32 = 0x1
	InMemory         uint32 = 0x2
	BlockAutoconnect uint32 = 0x20
	NoReapply        uint32 = 0x40
)

// Checkpoint flags (NMCheckpointCreateFlags).
const (
	CheckpointDestroyAll        uint32 = 0x1
	CheckpointDeleteNewConns    uint32 = 0x2
	CheckpointDisconnectNewDevs uint32 = 0x4
	CheckpointAllowOverlapping  uint32 = 0x8
)

// Device states (NMDeviceState) this package names.
const (
	DeviceActivated    uint32 = 100
	DeviceDeactivating uint32 = 110
	DeviceFailed       uint32 = 120
)

// Client is one connection to the system bus.
type Client struct {
	conn *dbus.Conn
	// CallTimeout bounds each call (DefaultCallTimeout when 0).
	CallTimeout time.Duration
}

// Dial connects to the system bus (a private connection, closed by Close)
// and checks that NetworkManager is there (ErrUnavailable otherwise).
func Dial() (*Client, error) {
	conn, err := dbus.SystemBusPrivate()
	if err != nil {
		return nil, fmt.Errorf("%w: system bus: %v", ErrUnavailable, err)
	}
	if err := conn.Auth(nil); err != nil {
		conn.Close()
		return nil, fmt.Errorf("%w: system bus auth: %v", ErrUnavailable, err)
	}
	if err := conn.Hello(); err != nil {
		conn.Close()
		return nil, fmt.Errorf("%w: system bus hello: %v", ErrUnavailable, err)
	}
	var has bool
	if err := conn.BusObject().Call("org.freedesktop.DBus.NameHasOwner", 0, busName).Store(&has); err != nil || !has {
		conn.Close()
		return nil, ErrUnavailable
	}
	return &Client{conn: conn}, nil
}

// Close closes the bus connection.
func (c *Client) Close() error { return c.conn.Close() }

func (c *Client) obj(p dbus.ObjectPath) dbus.BusObject { return c.conn.Object(busName, p) }

// call makes one call, bounded by ctx and by CallTimeout. A call whose
// context has expired already is not sent (godbus): nothing reaches a
// NetworkManager that would carry it out late.
func (c *Client) call(ctx context.Context, p dbus.ObjectPath, method string, args ...any) *dbus.Call {
	limit := c.CallTimeout
	if limit <= 0 {
		limit = DefaultCallTimeout
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	call := c.obj(p).CallWithContext(ctx, method, 0, args...)
	if call.Err != nil && errors.Is(call.Err, context.DeadlineExceeded) {
		call.Err = fmt.Errorf("%w within %v (stopped or hung?)", ErrNoAnswer, time.Since(start).Round(time.Millisecond))
	}
	return call
}

// prop reads a property, bounded by ctx and by CallTimeout.
func (c *Client) prop(ctx context.Context, p dbus.ObjectPath, name string, v any) error {
	i := strings.LastIndex(name, ".")
	var variant dbus.Variant
	err := c.call(ctx, p, "org.freedesktop.DBus.Properties.Get", name[:i], name[i+1:]).Store(&variant)
	if err != nil {
		return fmt.Errorf("NetworkManager: read %s of %s: %w", name, p, err)
	}
	return variant.Store(v)
}

// Ping asks NetworkManager to answer (org.freedesktop.DBus.Peer.Ping): an
// error when it is gone from the bus (ErrUnavailable) or does not answer
// within ctx (ErrNoAnswer).
func (c *Client) Ping(ctx context.Context) error {
	err := c.call(ctx, rootPath, "org.freedesktop.DBus.Peer.Ping").Err
	var de dbus.Error
	if errors.As(err, &de) && (de.Name == "org.freedesktop.DBus.Error.ServiceUnknown" ||
		de.Name == "org.freedesktop.DBus.Error.NameHasNoOwner" || de.Name == "org.freedesktop.DBus.Error.NoReply") {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if err != nil {
		return fmt.Errorf("NetworkManager Ping: %w", err)
	}
	return nil
}

// Connections lists the paths of every connection profile.
func (c *Client) Connections(ctx context.Context) ([]dbus.ObjectPath, error) {
	var out []dbus.ObjectPath
	if err := c.call(ctx, settingsPath, ifaceSet+".ListConnections").Store(&out); err != nil {
		return nil, fmt.Errorf("NetworkManager ListConnections: %w", err)
	}
	return out, nil
}

// GetSettings reads a profile (without secrets).
func (c *Client) GetSettings(ctx context.Context, conn dbus.ObjectPath) (Settings, error) {
	var s Settings
	if err := c.call(ctx, conn, ifaceConn+".GetSettings").Store(&s); err != nil {
		return nil, fmt.Errorf("NetworkManager GetSettings %s: %w", conn, err)
	}
	return s, nil
}

// AddConnection2 adds a profile (flags: ToDisk or InMemory, maybe
// BlockAutoconnect) and returns its path.
func (c *Client) AddConnection2(ctx context.Context, s Settings, flags uint32) (dbus.ObjectPath, error) {
	var path dbus.ObjectPath
	var result map[string]dbus.Variant
	err := c.call(ctx, settingsPath, ifaceSet+".AddConnection2", s, flags, map[string]dbus.Variant{}).Store(&path, &result)
	if err != nil {
		return "", fmt.Errorf("NetworkManager AddConnection2: %w", err)
	}
	return path, nil
}

// Update2 replaces a profile's settings.
func (c *Client) Update2(ctx context.Context, conn dbus.ObjectPath, s Settings, flags uint32) error {
	var result map[string]dbus.Variant
	if err := c.call(ctx, conn, ifaceConn+".Update2", s, flags, map[string]dbus.Variant{}).Store(&result); err != nil {
		return fmt.Errorf("NetworkManager Update2 %s: %w", conn, err)
	}
	return nil
}

// Delete removes a profile (deactivating it first, NetworkManager's way).
func (c *Client) Delete(ctx context.Context, conn dbus.ObjectPath) error {
	if err := c.call(ctx, conn, ifaceConn+".Delete").Err; err != nil {
		return fmt.Errorf("NetworkManager Delete %s: %w", conn, err)
	}
	return nil
}

// Activate activates a profile on whatever device it names ("/" device):
// for a software bridge, NetworkManager creates the device.
func (c *Client) Activate(ctx context.Context, conn dbus.ObjectPath) (dbus.ObjectPath, error) {
	var active dbus.ObjectPath
	err := c.call(ctx, rootPath, ifaceNM+".ActivateConnection", conn, dbus.ObjectPath("/"), dbus.ObjectPath("/")).Store(&active)
	if err != nil {
		return "", fmt.Errorf("NetworkManager ActivateConnection %s: %w", conn, err)
	}
	return active, nil
}

// Deactivate deactivates an active connection.
func (c *Client) Deactivate(ctx context.Context, active dbus.ObjectPath) error {
	if err := c.call(ctx, rootPath, ifaceNM+".DeactivateConnection", active).Err; err != nil {
		return fmt.Errorf("NetworkManager DeactivateConnection %s: %w", active, err)
	}
	return nil
}

// ActiveConnection is one entry of NetworkManager's ActiveConnections.
type ActiveConnection struct {
	Path       dbus.ObjectPath
	Connection dbus.ObjectPath // the profile
	State      uint32          // NMActiveConnectionState: 2 activated
	Devices    []dbus.ObjectPath
}

// ActiveConnections lists the active connections with their profile.
func (c *Client) ActiveConnections(ctx context.Context) ([]ActiveConnection, error) {
	var paths []dbus.ObjectPath
	if err := c.prop(ctx, rootPath, ifaceNM+".ActiveConnections", &paths); err != nil {
		return nil, err
	}
	out := make([]ActiveConnection, 0, len(paths))
	for _, p := range paths {
		a := ActiveConnection{Path: p}
		// One that vanished meanwhile is simply not listed; a
		// NetworkManager that stopped answering is an error, not an
		// empty list.
		err := c.prop(ctx, p, ifaceActive+".Connection", &a.Connection)
		if err == nil {
			err = c.prop(ctx, p, ifaceActive+".State", &a.State)
		}
		if errors.Is(err, ErrNoAnswer) || errors.Is(err, context.Canceled) {
			return nil, err
		}
		if err != nil {
			continue
		}
		c.prop(ctx, p, ifaceActive+".Devices", &a.Devices)
		out = append(out, a)
	}
	return out, nil
}

// DeviceByIface finds a device by its interface name; ok false when
// NetworkManager has none.
func (c *Client) DeviceByIface(ctx context.Context, iface string) (dbus.ObjectPath, bool, error) {
	var dev dbus.ObjectPath
	err := c.call(ctx, rootPath, ifaceNM+".GetDeviceByIpIface", iface).Store(&dev)
	var de dbus.Error
	if errors.As(err, &de) && de.Name == busName+".UnknownDevice" {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("NetworkManager GetDeviceByIpIface %s: %w", iface, err)
	}
	return dev, true, nil
}

// DeviceState reads a device's NMDeviceState (bounded by CallTimeout).
func (c *Client) DeviceState(dev dbus.ObjectPath) (uint32, error) {
	var st uint32
	return st, c.prop(context.Background(), dev, ifaceDev+".State", &st)
}

// AppliedConnection reads the settings applied on a device now and their
// version id (for Reapply).
func (c *Client) AppliedConnection(ctx context.Context, dev dbus.ObjectPath) (Settings, uint64, error) {
	var s Settings
	var version uint64
	if err := c.call(ctx, dev, ifaceDev+".GetAppliedConnection", uint32(0)).Store(&s, &version); err != nil {
		return nil, 0, fmt.Errorf("NetworkManager GetAppliedConnection %s: %w", dev, err)
	}
	return s, version, nil
}

// Reapply applies settings to an active device without deactivating it:
// ports stay in their bridge. version 0 skips the version check.
func (c *Client) Reapply(ctx context.Context, dev dbus.ObjectPath, s Settings, version uint64) error {
	if err := c.call(ctx, dev, ifaceDev+".Reapply", s, version, uint32(0)).Err; err != nil {
		return fmt.Errorf("NetworkManager Reapply %s: %w", dev, err)
	}
	return nil
}

// CheckpointCreate snapshots devices (and their profiles); NetworkManager
// rolls back by itself after rollbackTimeout unless the checkpoint is
// destroyed first.
func (c *Client) CheckpointCreate(ctx context.Context, devices []dbus.ObjectPath, rollbackTimeout time.Duration, flags uint32) (dbus.ObjectPath, error) {
	var cp dbus.ObjectPath
	secs := uint32(rollbackTimeout / time.Second)
	if err := c.call(ctx, rootPath, ifaceNM+".CheckpointCreate", devices, secs, flags).Store(&cp); err != nil {
		return "", fmt.Errorf("NetworkManager CheckpointCreate: %w", err)
	}
	return cp, nil
}

// CheckpointRollback restores a checkpoint (and destroys it).
func (c *Client) CheckpointRollback(ctx context.Context, cp dbus.ObjectPath) error {
	var result map[string]uint32
	if err := c.call(ctx, rootPath, ifaceNM+".CheckpointRollback", cp).Store(&result); err != nil {
		return fmt.Errorf("NetworkManager CheckpointRollback %s: %w", cp, err)
	}
	for dev, r := range result {
		if r != 0 {
			return fmt.Errorf("NetworkManager CheckpointRollback %s: device %s: result %d", cp, dev, r)
		}
	}
	return nil
}

// CheckpointDestroy drops a checkpoint, keeping the changes made since.
func (c *Client) CheckpointDestroy(ctx context.Context, cp dbus.ObjectPath) error {
	if err := c.call(ctx, rootPath, ifaceNM+".CheckpointDestroy", cp).Err; err != nil {
		return fmt.Errorf("NetworkManager CheckpointDestroy %s: %w", cp, err)
	}
	return nil
}

// Checkpoints lists the checkpoints that exist (bounded by CallTimeout).
func (c *Client) Checkpoints() ([]dbus.ObjectPath, error) {
	var cps []dbus.ObjectPath
	return cps, c.prop(context.Background(), rootPath, ifaceNM+".Checkpoints", &cps)
}

// DeviceActiveProfile is the profile active on a device now ("" when
// none), bounded by CallTimeout.
func (c *Client) DeviceActiveProfile(dev dbus.ObjectPath) (dbus.ObjectPath, error) {
	var active dbus.ObjectPath
	if err := c.prop(context.Background(), dev, ifaceDev+".ActiveConnection", &active); err != nil {
		return "", err
	}
	if active == "/" || active == "" {
		return "", nil
	}
	var conn dbus.ObjectPath
	if err := c.prop(context.Background(), active, ifaceActive+".Connection", &conn); err != nil {
		return "", err
	}
	return conn, nil
}

// ConnectionByUUID finds a profile by its UUID; ok false when there is none.
func (c *Client) ConnectionByUUID(ctx context.Context, uuid string) (dbus.ObjectPath, bool, error) {
	var p dbus.ObjectPath
	err := c.call(ctx, settingsPath, ifaceSet+".GetConnectionByUuid", uuid).Store(&p)
	if IsUnknownObject(err) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("NetworkManager GetConnectionByUuid %s: %w", uuid, err)
	}
	return p, true, nil
}

// ActivateOn activates a profile on a given device.
func (c *Client) ActivateOn(ctx context.Context, conn, dev dbus.ObjectPath) (dbus.ObjectPath, error) {
	var active dbus.ObjectPath
	err := c.call(ctx, rootPath, ifaceNM+".ActivateConnection", conn, dev, dbus.ObjectPath("/")).Store(&active)
	if err != nil {
		return "", fmt.Errorf("NetworkManager ActivateConnection %s on %s: %w", conn, dev, err)
	}
	return active, nil
}

// CheckpointDevices reads the devices a checkpoint covers.
func (c *Client) CheckpointDevices(ctx context.Context, cp dbus.ObjectPath) ([]dbus.ObjectPath, error) {
	var devs []dbus.ObjectPath
	return devs, c.prop(ctx, cp, busName+".Checkpoint.Devices", &devs)
}

// IsUnknownObject tells whether err says a profile or checkpoint path
// no longer exists.
func IsUnknownObject(err error) bool {
	var de dbus.Error
	if errors.As(err, &de) {
		return de.Name == "org.freedesktop.DBus.Error.UnknownMethod" ||
			de.Name == "org.freedesktop.DBus.Error.UnknownObject" ||
			de.Name == busName+".Settings.InvalidConnection"
	}
	return false
}

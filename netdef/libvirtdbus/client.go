// Package libvirtdbus reads and acts on libvirt's virtual networks through
// libvirt-dbus (bus name org.libvirt, object /org/libvirt/QEMU), the
// system-bus face of libvirtd. It speaks D-Bus directly with godbus.
package libvirtdbus

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/godbus/dbus/v5"
)

const (
	busName      = "org.libvirt"
	connectPath  = dbus.ObjectPath("/org/libvirt/QEMU")
	connectIface = "org.libvirt.Connect"
	networkIface = "org.libvirt.Network"
	xmlInactive  = 1 // VIR_NETWORK_XML_INACTIVE: the persistent definition
	listInactive = 1 // VIR_CONNECT_LIST_NETWORKS_INACTIVE
	listActive   = 2 // VIR_CONNECT_LIST_NETWORKS_ACTIVE
)

// ErrUnavailable wraps every failure to reach libvirt at all, so callers
// can tell "libvirt is not there" from "libvirt said no".
var ErrUnavailable = errors.New("libvirt is not reachable over D-Bus")

// Client talks to libvirt-dbus over the system bus. A long-running user
// (the daemon) survives a restart of the bus: a lost connection is
// re-made on the next call.
type Client struct {
	mu   sync.Mutex
	conn *dbus.Conn
}

// Dial connects to the system bus. It does not yet ask libvirt anything.
func Dial() (*Client, error) {
	c := &Client{}
	if _, err := c.bus(); err != nil {
		return nil, err
	}
	return c, nil
}

// bus returns a live private connection, making one if needed. Private:
// closing ours must not close a connection other code shares.
func (c *Client) bus() (*dbus.Conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != nil && c.conn.Connected() {
		return c.conn, nil
	}
	conn, err := dbus.SystemBusPrivate()
	if err == nil {
		if err = conn.Auth(nil); err == nil {
			err = conn.Hello()
		}
		if err != nil {
			conn.Close()
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%w: system bus: %v", ErrUnavailable, err)
	}
	c.conn = conn
	return conn, nil
}

// Close closes the bus connection.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == nil {
		return nil
	}
	return c.conn.Close()
}

// Network is one libvirt network as libvirt-dbus reports it.
type Network struct {
	Path       dbus.ObjectPath
	Name       string
	UUID       string
	Active     bool
	Persistent bool
	Autostart  bool
	LiveXML    string // what runs now (the definition when inactive)
	DefinedXML string // the persistent definition; "" for a transient network
}

func (c *Client) call(ctx context.Context, path dbus.ObjectPath, method string, args ...any) *dbus.Call {
	conn, err := c.bus()
	if err != nil {
		return &dbus.Call{Err: err}
	}
	return conn.Object(busName, path).CallWithContext(ctx, method, 0, args...)
}

// classify marks errors that mean libvirt-dbus or libvirtd is absent.
func classify(what string, err error) error {
	if err == nil {
		return nil
	}
	var de dbus.Error
	if errors.As(err, &de) {
		switch de.Name {
		case "org.freedesktop.DBus.Error.ServiceUnknown",
			"org.freedesktop.DBus.Error.NameHasNoOwner",
			"org.freedesktop.DBus.Error.Spawn.ChildExited",
			"org.freedesktop.DBus.Error.Spawn.Failed",
			"org.freedesktop.DBus.Error.NoReply",
			"org.freedesktop.DBus.Error.Timeout",
			"org.freedesktop.DBus.Error.Disconnected":
			return fmt.Errorf("%w: %s: %s", ErrUnavailable, what, strings.Join(errStrings(de), ": "))
		}
		// libvirt-dbus answers with org.libvirt.Error when libvirtd is down.
		msg := strings.Join(errStrings(de), ": ")
		for _, sign := range libvirtdDown {
			if strings.Contains(msg, sign) {
				return fmt.Errorf("%w: %s: %s", ErrUnavailable, what, msg)
			}
		}
		return fmt.Errorf("%s: %s", what, msg)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %s: no answer in time", ErrUnavailable, what)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// libvirtdDown are the messages libvirt-dbus relays when libvirtd is not
// running or went away under it.
var libvirtdDown = []string{
	"Failed to connect socket", "no connection driver", "client socket is closed",
	"Cannot recv data", "Connection reset", "Broken pipe", "End of file while reading",
	"Cannot write data", "connection closed",
}

func errStrings(e dbus.Error) []string {
	out := []string{e.Name}
	for _, b := range e.Body {
		out = append(out, fmt.Sprint(b))
	}
	return out
}

// listWorkers bounds the calls in flight: libvirt-dbus serves method calls
// from a thread pool, and a few at once hide the round trips.
const listWorkers = 8

// List returns every network, active and only defined, with its live XML
// and, when withDefined, its persistent definition.
func (c *Client) List(ctx context.Context, withDefined bool) ([]Network, error) {
	// Listing active and inactive networks apart tells which is which
	// without a property call per network.
	var active, inactive []dbus.ObjectPath
	if err := c.call(ctx, connectPath, connectIface+".ListNetworks", uint32(listActive)).Store(&active); err != nil {
		return nil, classify("list networks", err)
	}
	if err := c.call(ctx, connectPath, connectIface+".ListNetworks", uint32(listInactive)).Store(&inactive); err != nil {
		return nil, classify("list networks", err)
	}
	paths := append(active, inactive...)
	nets := make([]Network, len(paths))
	errs := make([]error, len(paths))
	jobs := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < min(listWorkers, len(paths)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				if withDefined {
					nets[i], errs[i] = c.get(ctx, paths[i], true)
				} else {
					nets[i], errs[i] = c.getLive(ctx, paths[i], i < len(active))
				}
			}
		}()
	}
	for i := range paths {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	out := nets[:0]
	for i, n := range nets {
		if errs[i] != nil {
			// A network undefined between the list and this read is gone,
			// not an error.
			if isNoNetwork(errs[i]) {
				continue
			}
			return nil, errs[i]
		}
		out = append(out, n)
	}
	return out, nil
}

// Lookup finds a network by name.
func (c *Client) Lookup(ctx context.Context, name string) (Network, error) {
	var p dbus.ObjectPath
	if err := c.call(ctx, connectPath, connectIface+".NetworkLookupByName", name).Store(&p); err != nil {
		return Network{}, classify("look up network "+name, err)
	}
	return c.get(ctx, p, true)
}

// getLive reads only a network's live XML (one call): the name and UUID
// come from the XML, activity from the listing.
func (c *Client) getLive(ctx context.Context, p dbus.ObjectPath, active bool) (Network, error) {
	n := Network{Path: p, Active: active}
	if err := c.call(ctx, p, networkIface+".GetXMLDesc", uint32(0)).Store(&n.LiveXML); err != nil {
		return n, classify("read XML of network "+string(p), err)
	}
	var head struct {
		Name string `xml:"name"`
		UUID string `xml:"uuid"`
	}
	if err := xml.Unmarshal([]byte(n.LiveXML), &head); err != nil || head.Name == "" {
		return n, fmt.Errorf("network %s: libvirt returned XML without a name", p)
	}
	n.Name, n.UUID = head.Name, head.UUID
	return n, nil
}

// get reads one network's properties and XML.
func (c *Client) get(ctx context.Context, p dbus.ObjectPath, withDefined bool) (Network, error) {
	n := Network{Path: p}
	var props map[string]dbus.Variant
	if err := c.call(ctx, p, "org.freedesktop.DBus.Properties.GetAll", networkIface).Store(&props); err != nil {
		return n, classify("read network "+string(p), err)
	}
	n.Name, _ = props["Name"].Value().(string)
	n.UUID, _ = props["UUID"].Value().(string)
	n.Active, _ = props["Active"].Value().(bool)
	n.Persistent, _ = props["Persistent"].Value().(bool)
	n.Autostart, _ = props["Autostart"].Value().(bool)
	if err := c.call(ctx, p, networkIface+".GetXMLDesc", uint32(0)).Store(&n.LiveXML); err != nil {
		return n, classify("read XML of network "+n.Name, err)
	}
	if n.Persistent && withDefined {
		if err := c.call(ctx, p, networkIface+".GetXMLDesc", uint32(xmlInactive)).Store(&n.DefinedXML); err != nil {
			return n, classify("read defined XML of network "+n.Name, err)
		}
	}
	return n, nil
}

// Destroy stops a running network; its definition stays.
func (c *Client) Destroy(ctx context.Context, n Network) error {
	return classify("destroy network "+n.Name, c.call(ctx, n.Path, networkIface+".Destroy").Err)
}

// Create starts a defined network from its persistent definition.
func (c *Client) Create(ctx context.Context, n Network) error {
	return classify("start network "+n.Name, c.call(ctx, n.Path, networkIface+".Create").Err)
}

// CreateXML starts a network from XML without touching any persistent
// definition of the same name and UUID: the live network runs the new XML
// while the definition keeps the old.
func (c *Client) CreateXML(ctx context.Context, xml string) (dbus.ObjectPath, error) {
	var p dbus.ObjectPath
	err := c.call(ctx, connectPath, connectIface+".NetworkCreateXML", xml).Store(&p)
	return p, classify("start network from XML", err)
}

// DefineXML defines (or redefines) a persistent network.
func (c *Client) DefineXML(ctx context.Context, xml string) (dbus.ObjectPath, error) {
	var p dbus.ObjectPath
	err := c.call(ctx, connectPath, connectIface+".NetworkDefineXML", xml).Store(&p)
	return p, classify("define network", err)
}

// Undefine removes a network's persistent definition.
func (c *Client) Undefine(ctx context.Context, n Network) error {
	return classify("undefine network "+n.Name, c.call(ctx, n.Path, networkIface+".Undefine").Err)
}

func isNoNetwork(err error) bool {
	return err != nil && strings.Contains(err.Error(), "Network not found")
}

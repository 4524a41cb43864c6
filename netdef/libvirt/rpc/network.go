package rpc

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	libvirt "github.com/digitalocean/go-libvirt"
)

// Network is a libvirt virtual network as libvirt reported it.
type Network struct {
	Name       string
	UUID       string // canonical text form, lower case
	Active     bool
	Persistent bool // has a definition that outlives a destroy
	Autostart  bool
	// LiveXML is the network's current XML (virNetworkGetXMLDesc, flags
	// 0): the running configuration of an active network, the definition
	// of an inactive one.
	LiveXML string
	// DefinedXML is the persistent definition (VIR_NETWORK_XML_INACTIVE),
	// which differs from LiveXML while a renumbered network runs. Set only
	// when asked for and Persistent.
	DefinedXML string
	// Err: libvirt answered with an error when asked for this network's
	// state or XML (one longer than its RPC carries, say). The network
	// cannot be read; the others still can.
	Err error
}

// Networks lists every network, active or not, with its XML. A network
// that disappears while it is being read is left out.
func (c *Conn) Networks(ctx context.Context, withDefined bool) ([]Network, error) {
	var nets []libvirt.Network
	err := c.call(ctx, c.net, func(l *libvirt.Libvirt) (err error) {
		nets, _, err = l.ConnectListAllNetworks(1, 0)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("libvirt: list networks: %w", classify(err))
	}
	out := make([]Network, len(nets))
	gone := make([]bool, len(nets))
	err = forEach(len(nets), func(i int) error {
		n, err := c.describe(ctx, nets[i], withDefined)
		if errors.Is(err, ErrNotFound) {
			gone[i] = true
			return nil
		}
		var lerr libvirt.Error
		if errors.As(err, &lerr) {
			out[i] = Network{Name: nets[i].Name, UUID: formatUUID(nets[i].UUID), Err: err}
			return nil
		}
		out[i] = n
		return err
	})
	if err != nil {
		return nil, err
	}
	kept := out[:0]
	for i, n := range out {
		if !gone[i] {
			kept = append(kept, n)
		}
	}
	return kept, nil
}

// Network reads one network by name; ErrNotFound if libvirt has none.
func (c *Conn) Network(ctx context.Context, name string, withDefined bool) (Network, error) {
	n, err := c.lookupNetwork(ctx, name)
	if err != nil {
		return Network{}, opError("look up network", name, err)
	}
	return c.describe(ctx, n, withDefined)
}

func (c *Conn) lookupNetwork(ctx context.Context, name string) (n libvirt.Network, err error) {
	err = c.call(ctx, c.net, func(l *libvirt.Libvirt) (err error) {
		n, err = l.NetworkLookupByName(name)
		return err
	})
	return n, err
}

// describe reads a network's state and XML.
func (c *Conn) describe(ctx context.Context, n libvirt.Network, withDefined bool) (Network, error) {
	out := Network{Name: n.Name, UUID: formatUUID(n.UUID)}
	err := c.call(ctx, c.net, func(l *libvirt.Libvirt) error {
		active, err := l.NetworkIsActive(n)
		if err != nil {
			return err
		}
		persistent, err := l.NetworkIsPersistent(n)
		if err != nil {
			return err
		}
		autostart, err := l.NetworkGetAutostart(n)
		if err != nil {
			return err
		}
		out.Active, out.Persistent, out.Autostart = active == 1, persistent == 1, autostart == 1
		if out.LiveXML, err = l.NetworkGetXMLDesc(n, 0); err != nil {
			return err
		}
		if withDefined && out.Persistent {
			out.DefinedXML, err = l.NetworkGetXMLDesc(n, uint32(libvirt.NetworkXMLInactive))
		}
		return err
	})
	if err != nil {
		return Network{}, opError("read network", n.Name, err)
	}
	return out, nil
}

// DestroyNetwork stops a network (virNetworkDestroy). A network that is
// already inactive is success; one libvirt does not know (a transient
// network destroyed earlier) is ErrNotFound.
func (c *Conn) DestroyNetwork(ctx context.Context, name string) error {
	n, err := c.lookupNetwork(ctx, name)
	if err != nil {
		return opError("destroy network", name, err)
	}
	err = c.call(ctx, c.net, func(l *libvirt.Libvirt) error {
		return whileActive(l, n, func() error { return l.NetworkDestroy(n) })
	})
	return opError("destroy network", name, err)
}

// whileActive runs f, an operation that needs n active, unless n is
// inactive, and returns nil if n is (or turns out to be) inactive. Asking
// first keeps libvirtd's log free of "network is not active" errors on
// every repeated call; asking again after VIR_ERR_OPERATION_INVALID
// (libvirt's code for "not active") covers a network stopped in between
// without trusting that code to have no other cause.
func whileActive(l *libvirt.Libvirt, n libvirt.Network, f func() error) error {
	active, err := l.NetworkIsActive(n)
	if err != nil || active == 0 {
		return err
	}
	err = f()
	if !hasCode(err, libvirt.ErrOperationInvalid) {
		return err
	}
	if active, aerr := l.NetworkIsActive(n); aerr == nil && active == 0 {
		return nil
	}
	return err
}

// CreateNetworkXML starts a transient network from xml, or runs a defined
// network (same name and UUID) with xml instead of its definition, which
// stays as it was: how a network is renumbered without touching its
// definition (virNetworkCreateXML).
func (c *Conn) CreateNetworkXML(ctx context.Context, xml string) error {
	err := c.call(ctx, c.net, func(l *libvirt.Libvirt) error {
		_, err := l.NetworkCreateXML(xml)
		return err
	})
	return opError("create network", xmlName(xml), err)
}

// DefineNetworkXML defines a network, or replaces the definition of the
// network with the same name and UUID (virNetworkDefineXML). A running
// network keeps running its old configuration until restarted.
func (c *Conn) DefineNetworkXML(ctx context.Context, xml string) error {
	err := c.call(ctx, c.net, func(l *libvirt.Libvirt) error {
		_, err := l.NetworkDefineXML(xml)
		return err
	})
	return opError("define network", xmlName(xml), err)
}

// Port is a libvirt network port: a guest NIC's claim on a network.
type Port struct {
	UUID string // canonical text; the domain's <source portid=…>
	XML  string // <networkport> as virNetworkPortGetXMLDesc gave it
}

// Ports lists a network's ports with their XML, the state ReclaimPort
// needs to restore them after the network is destroyed and re-created. An
// inactive network has none; a port that disappears while being read is
// left out.
func (c *Conn) Ports(ctx context.Context, network string) ([]Port, error) {
	n, err := c.lookupNetwork(ctx, network)
	if err != nil {
		return nil, opError("list ports of network", network, err)
	}
	var ports []libvirt.NetworkPort
	err = c.call(ctx, c.net, func(l *libvirt.Libvirt) error {
		return whileActive(l, n, func() (err error) {
			ports, _, err = l.NetworkListAllPorts(n, 1, 0)
			return err
		})
	})
	if err != nil {
		return nil, opError("list ports of network", network, err)
	}
	out := make([]Port, len(ports))
	gone := make([]bool, len(ports))
	err = forEach(len(ports), func(i int) error {
		p := ports[i]
		out[i].UUID = formatUUID(p.UUID)
		err := c.call(ctx, c.net, func(l *libvirt.Libvirt) (err error) {
			out[i].XML, err = l.NetworkPortGetXMLDesc(p, 0)
			return err
		})
		if hasCode(err, libvirt.ErrNoNetworkPort) {
			gone[i] = true
			return nil
		}
		return opError("read port", network+"/"+out[i].UUID, err)
	})
	if err != nil {
		return nil, err
	}
	kept := out[:0]
	for i, p := range out {
		if !gone[i] {
			kept = append(kept, p)
		}
	}
	return kept, nil
}

// ReclaimPort re-creates a port saved by Ports on the (re-created, active)
// network with VIR_NETWORK_PORT_CREATE_RECLAIM: libvirt records the
// guest's claim again, under the same UUID, without allocating anything
// new. It does not plug the guest's tap into the bridge. A port that
// already exists is success and is left alone. The network's port list is
// checked first because creating a duplicate is not harmless: libvirt's
// networkPortCreateXML notifies the port (connection count, bandwidth
// class, network hook) before virNetworkObjAddPort finds the duplicate,
// then releases it again (which frees the bandwidth class the live port
// holds), reports VIR_ERR_NETWORK_PORT_EXIST and logs an error.
func (c *Conn) ReclaimPort(ctx context.Context, network string, p Port) error {
	obj := network + "/" + p.UUID
	uuid, err := parseUUID(p.UUID)
	if err != nil {
		return fmt.Errorf("libvirt: reclaim port %q: %w", obj, err)
	}
	n, err := c.lookupNetwork(ctx, network)
	if err != nil {
		return opError("reclaim port", obj, err)
	}
	err = c.call(ctx, c.net, func(l *libvirt.Libvirt) error {
		// A list, not virNetworkPortLookupByUUID: a failed lookup is
		// logged by libvirtd as an error.
		ports, _, err := l.NetworkListAllPorts(n, 1, 0)
		if err != nil {
			return err
		}
		for _, q := range ports {
			if q.UUID == uuid {
				return nil
			}
		}
		_, err = l.NetworkPortCreateXML(n, p.XML, uint32(libvirt.NetworkPortCreateReclaim))
		if hasCode(err, libvirt.ErrNetworkPortExist) {
			return nil // reclaimed by someone else meanwhile
		}
		return err
	})
	return opError("reclaim port", obj, err)
}

// formatUUID writes a UUID in its canonical 8-4-4-4-12 text form.
func formatUUID(u libvirt.UUID) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// parseUUID reads a UUID in canonical form (or as 32 hex digits).
func parseUUID(s string) (libvirt.UUID, error) {
	var u libvirt.UUID
	h := strings.ReplaceAll(s, "-", "")
	if len(h) != 2*len(u) || (len(h) != len(s) && !canonicalDashes(s)) {
		return u, fmt.Errorf("invalid UUID %q", s)
	}
	if _, err := hex.Decode(u[:], []byte(h)); err != nil {
		return u, fmt.Errorf("invalid UUID %q", s)
	}
	return u, nil
}

func canonicalDashes(s string) bool {
	return len(s) == 36 && s[8] == '-' && s[13] == '-' && s[18] == '-' && s[23] == '-'
}

package rpc

import (
	"context"
	"errors"
	"fmt"

	libvirt "github.com/digitalocean/go-libvirt"
)

// GuestNIC is a running guest's interface on a libvirt network, as its
// domain's live XML describes it.
type GuestNIC struct {
	Domain     string // domain name
	DomainUUID string // canonical text
	MAC        string
	Target     string // host side tap, e.g. vnet0
	Bridge     string // bridge the tap was plugged into, as libvirt recorded it
	PortID     string // the network port's UUID (<source portid=…>)
	// XML is the <interface> element exactly as libvirt gave it; SetLink
	// sends it back with only the link state changed.
	XML string
}

// GuestNICs lists the interfaces of every running domain whose
// <source network=…> is network. Domains that stop while being read are
// left out.
func (c *Conn) GuestNICs(ctx context.Context, network string) ([]GuestNIC, error) {
	return c.GuestNICsOn(ctx, network, "")
}

// GuestNICsOn is GuestNICs plus, when bridge is given, the interfaces of
// running domains attached straight to that bridge (type='bridge').
func (c *Conn) GuestNICsOn(ctx context.Context, network, bridge string) ([]GuestNIC, error) {
	var doms []libvirt.Domain
	err := c.call(ctx, c.dom, func(l *libvirt.Libvirt) (err error) {
		doms, _, err = l.ConnectListAllDomains(1, libvirt.ConnectListDomainsActive)
		return err
	})
	if err != nil {
		return nil, opError("list guests of network", network, err)
	}
	found := make([][]GuestNIC, len(doms))
	err = forEach(len(doms), func(i int) error {
		var xml string
		err := c.call(ctx, c.dom, func(l *libvirt.Libvirt) (err error) {
			xml, err = l.DomainGetXMLDesc(doms[i], 0)
			return err
		})
		if hasCode(err, libvirt.ErrNoDomain) {
			return nil
		}
		if err != nil {
			return opError("read domain", doms[i].Name, err)
		}
		nics, err := domainNICsOn([]byte(xml), network, bridge)
		if err != nil {
			return fmt.Errorf("libvirt: domain %q: %w", doms[i].Name, err)
		}
		found[i] = nics
		return nil
	})
	if err != nil {
		return nil, err
	}
	var out []GuestNIC
	for _, nics := range found {
		out = append(out, nics...)
	}
	return out, nil
}

// SetLink sets the link state the guest sees on nic (a device update of
// the running domain, like `virsh domif-setlink`). Bouncing it down and
// up makes a guest notice a carrier loss and ask for a new lease: qemu,
// not the host tap, owns the guest's link state. A domain that is gone or
// no longer runs, or no longer has the NIC, is ErrNotFound.
func (c *Conn) SetLink(ctx context.Context, nic GuestNIC, up bool) error {
	obj := nic.Domain + "/" + nic.MAC
	xml, err := setLinkState(nic.XML, up)
	if err != nil {
		return fmt.Errorf("libvirt: set link of %q: %w", obj, err)
	}
	uuid, err := parseUUID(nic.DomainUUID)
	if err != nil {
		return fmt.Errorf("libvirt: set link of %q: %w", obj, err)
	}
	err = c.call(ctx, c.dom, func(l *libvirt.Libvirt) error {
		dom, err := l.DomainLookupByUUID(uuid)
		if err != nil {
			return err
		}
		err = l.DomainUpdateDeviceFlags(dom, xml, libvirt.DomainDeviceModifyLive)
		if !hasCode(err, libvirt.ErrOperationInvalid) {
			return err
		}
		// VIR_ERR_OPERATION_INVALID: libvirt's "domain is not running"
		// for a live update; ask rather than trust that it is the only
		// cause.
		if active, aerr := l.DomainIsActive(dom); aerr == nil && active == 0 {
			return codeError{sentinel: ErrNotFound, lerr: libvirtError(err)}
		}
		return err
	})
	return opError("set link of", obj, err)
}

func libvirtError(err error) libvirt.Error {
	var lerr libvirt.Error
	errors.As(err, &lerr)
	return lerr
}

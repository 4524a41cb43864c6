package netdef

import (
	"fmt"
	"net/netip"
)

var forwardModes = map[string]bool{"nat": true, "route": true, "open": true, "bridge": true,
	"private": true, "vepa": true, "passthrough": true, "hostdev": true}

// directModes attach guests to a host device or bridge that libvirt does
// not run: no addressing, DNS or domain of their own.
var directModes = map[string]bool{"bridge": true, "private": true, "vepa": true, "passthrough": true, "hostdev": true}

// l3Modes are the modes libvirt routes for: they need an address.
var l3Modes = map[string]bool{"nat": true, "route": true, "open": true}

const fwdPath = "network/forward[0]"

// forward checks <forward> itself and the parts of the network that must
// agree with its mode.
func (v *validator) forward() {
	n, mode := v.n, v.mode
	f := n.Forward
	if f != nil && !forwardModes[mode] {
		v.add(fwdPath, "unknown forward mode %q", mode)
		return
	}
	nifs, npfs := 0, 0
	if f != nil {
		nifs, npfs = v.forwardDevices(f)
	}
	if l3Modes[mode] {
		if len(n.IPs) == 0 {
			v.add("network", "forward mode %s needs an <ip>", mode)
		}
		if nifs > 1 {
			v.add(fwdPath, "forward mode %s takes only one forwarding interface", mode)
		}
		if mode == "open" && nifs > 0 {
			v.add(fwdPath, "forward mode open takes no dev or <interface>")
		}
	}
	if directModes[mode] {
		v.directMode(nifs, npfs)
	}
	if n.MTU != nil && directModes[mode] {
		v.add("network/mtu[0]", "mtu is only allowed in open, route, nat and isolated networks, not with forward mode %s", mode)
	}
}

// forwardDevices checks the device pool and <nat>; it returns the number
// of forwarding interfaces (dev and <interface>/<address> alike) and PFs.
func (v *validator) forwardDevices(f *Forward) (nifs, npfs int) {
	mode := v.mode
	if f.Driver != nil && f.Driver.Name != "kvm" && f.Driver.Name != "vfio" {
		v.add(fwdPath+"/driver[0]", "forward driver name %q must be kvm or vfio", f.Driver.Name)
	}
	if f.NAT != nil {
		v.nat(f.NAT)
	}
	if f.Dev != "" && (len(f.Addresses) > 0 || len(f.PFs) > 0) {
		v.add(fwdPath, "forward dev cannot be used together with <address> or <pf>")
	}
	seen := map[string]bool{}
	if f.Dev != "" {
		nifs, seen[f.Dev] = 1, true
	}
	for i, itf := range f.Interfaces {
		p := fmt.Sprintf("%s/interface[%d]", fwdPath, i)
		switch {
		case itf.Dev == "":
			v.add(p, "a forward <interface> needs a dev")
		case i == 0 && f.Dev != "":
			if itf.Dev != f.Dev {
				v.add(p, "forward dev %q must match the first <interface dev=%q>", f.Dev, itf.Dev)
			}
		case seen[itf.Dev]:
			v.add(p, "interface %q is listed twice", itf.Dev)
		default:
			seen[itf.Dev] = true
			nifs++
		}
	}
	if len(f.Interfaces) > 0 && mode == "hostdev" {
		v.add(fwdPath+"/interface[0]", "hostdev networks list their devices by PCI <address>, not by interface name")
	}
	pci := map[string]bool{}
	for i, a := range f.Addresses {
		p := fmt.Sprintf("%s/address[%d]", fwdPath, i)
		switch {
		case a.Type == "":
			v.add(p, "a forward <address> needs a type")
		case a.Type != "pci":
			v.add(p, "forward address type %q is not supported (only pci)", a.Type)
		case mode != "hostdev":
			v.add(p, "a PCI <address> in the device pool needs forward mode hostdev")
		}
		key := a.Type + "|" + a.Domain + "|" + a.Bus + "|" + a.Slot + "|" + a.Function
		if pci[key] {
			v.add(p, "PCI device listed twice")
		}
		pci[key] = true
	}
	if len(f.Interfaces) == 0 && f.Dev == "" {
		nifs += len(f.Addresses)
	}
	if len(f.PFs) > 1 {
		v.add(fwdPath+"/pf[1]", "only one <pf> is allowed")
	}
	for i, pf := range f.PFs {
		if pf.Dev == "" {
			v.add(fmt.Sprintf("%s/pf[%d]", fwdPath, i), "a <pf> needs a dev")
		}
	}
	kinds := 0
	for _, used := range []bool{len(f.PFs) > 0, len(f.Interfaces) > 0 || f.Dev != "", len(f.Addresses) > 0} {
		if used {
			kinds++
		}
	}
	devClash := f.Dev != "" && (len(f.Addresses) > 0 || len(f.PFs) > 0) // reported above
	if kinds > 1 && !devClash {
		v.add(fwdPath, "<address>, <interface> and <pf> in <forward> are mutually exclusive")
	}
	return nifs, len(f.PFs)
}

func (v *validator) nat(nat *NAT) {
	const p = fwdPath + "/nat[0]"
	if v.mode != "nat" {
		v.add(p, "<nat> is only allowed with forward mode nat")
	}
	v.yesNo(p, "ipv6", nat.IPv6)
	if len(nat.Addresses) > 1 {
		v.add(p+"/address[1]", "only one <address> is allowed in <nat>")
	}
	if len(nat.Addresses) > 0 {
		r := nat.Addresses[0]
		ap := p + "/address[0]"
		s, err1 := netip.ParseAddr(r.Start)
		e, err2 := netip.ParseAddr(r.End)
		if err1 != nil || err2 != nil || !s.Is4() || !e.Is4() {
			v.add(ap, "a nat address range needs IPv4 start and end")
		} else if msg := rangeShape(s, e); msg != "" {
			v.add(ap, "nat address range %s", msg)
		}
	}
	if len(nat.Ports) > 1 {
		v.add(p+"/port[1]", "only one <port> is allowed in <nat>")
	}
	if len(nat.Ports) > 0 {
		r := nat.Ports[0]
		s, err1 := parsePort(r.Start)
		e, err2 := parsePort(r.End)
		if err1 != nil || err2 != nil || e < s {
			v.add(p+"/port[0]", "a nat port range needs start <= end, both 0-65535")
		}
	}
}

func parsePort(s string) (uint64, error) {
	var n uint64
	_, err := fmt.Sscan(s, &n)
	if err != nil || n > 65535 || fmt.Sprint(n) != s {
		return 0, fmt.Errorf("bad port %q", s)
	}
	return n, nil
}

// directMode applies the rules of the modes that attach to a host device.
func (v *validator) directMode(nifs, npfs int) {
	n, mode := v.n, v.mode
	if b := n.Bridge; b != nil {
		const p = "network/bridge[0]"
		if mode != "bridge" {
			if b.Name != "" {
				v.add(p, "a bridge name is not allowed with forward mode %s", mode)
			}
			if b.MACTableManager != "" {
				v.add(p, "macTableManager is not allowed with forward mode %s", mode)
			}
		}
		if b.Delay != "" || b.STP != "" || b.Zone != "" {
			v.add(p, "bridge delay, stp and zone are only allowed in route, nat and isolated networks, not with forward mode %s", mode)
		}
		if b.Name != "" && (nifs > 0 || npfs > 0) {
			v.add(p, "forward mode %s takes a bridge name or a forward dev, not both", mode)
		}
	}
	if n.MAC != nil {
		v.add("network/mac[0]", "a <mac> is not allowed with forward mode %s", mode)
	}
	for i := range n.IPs {
		v.add(fmt.Sprintf("network/ip[%d]", i), "<ip> is not allowed with forward mode %s: guests use the host's network directly", mode)
	}
	if d := n.DNS; d != nil && (len(d.TXTs) > 0 || len(d.Hosts) > 0 || len(d.SRVs) > 0) {
		v.add("network/dns[0]", "<dns> records are not allowed with forward mode %s", mode)
	}
	if n.Domain != nil && n.Domain.Name != "" {
		v.add("network/domain[0]", "a <domain> is not allowed with forward mode %s", mode)
	}
}

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"slices"

	"github.com/vnetguard/vnetguard/conflict"
	"github.com/vnetguard/vnetguard/netdef"
	"github.com/vnetguard/vnetguard/nmhook/backend"
	"github.com/vnetguard/vnetguard/nmhook/backend/libvirt"
	"github.com/vnetguard/vnetguard/nmhook/backend/profiles"
)

// needsAutoAddr tells whether `net define` must choose the network's
// subnets: autoaddr='yes' and no <ip> at all.
func needsAutoAddr(d *netdef.Definition) bool {
	return d.Network.AutoAddr == "yes" && len(d.Network.IPs) == 0
}

// checkDefinition validates a definition for `net define`; one whose
// subnets are still to be chosen is checked as it will be, with stand-in
// subnets (inserted at its end, so lines named in errors stay right).
func checkDefinition(d *netdef.Definition) error {
	if !needsAutoAddr(d) {
		return profiles.Check(d)
	}
	nd, err := withIPs(d, autoAddrIPs(netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("fd00::/64")))
	if err != nil {
		return err
	}
	return profiles.Check(nd)
}

// autoAddrIPs renders the <ip> elements for chosen subnets: the IPv4 one
// with the first host on the bridge and a DHCP range (.100 to .200 of a
// /24; the upper half of a smaller subnet), the IPv6 /64 with ::1 (router
// advertisements, SLAAC).
func autoAddrIPs(v4, v6 netip.Prefix) []byte {
	var b bytes.Buffer
	if v4.IsValid() {
		first := v4.Masked().Addr().Next()
		size := uint32(1) << (32 - v4.Bits())
		lo, hi := uint32(100), uint32(200)
		if size < 256 {
			lo, hi = size/2, size-2
		}
		at := func(n uint32) netip.Addr {
			a := v4.Masked().Addr().As4()
			v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3]) + n
			return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
		}
		fmt.Fprintf(&b, "  <ip address='%s' prefix='%d'>\n    <dhcp>\n      <range start='%s' end='%s'/>\n    </dhcp>\n  </ip>\n",
			first, v4.Bits(), at(lo), at(hi))
	}
	if v6.IsValid() {
		fmt.Fprintf(&b, "  <ip family='ipv6' address='%s' prefix='64'/>\n", v6.Masked().Addr().Next())
	}
	return b.Bytes()
}

// withIPs inserts ips before the definition's closing </network>, keeping
// every other byte, and parses the result.
func withIPs(d *netdef.Definition, ips []byte) (*netdef.Definition, error) {
	i := bytes.LastIndex(d.Raw, []byte("</network>"))
	if i < 0 {
		return nil, errors.New("no </network> to put the chosen <ip> elements before")
	}
	raw := slices.Concat(d.Raw[:i], ips, d.Raw[i:])
	nd, err := netdef.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("the definition with its chosen subnets does not parse: %w", err)
	}
	nd.Path = d.Path
	return nd, nil
}

// autoAddress chooses free subnets for a network with autoaddr='yes' and
// no <ip>: an IPv4 /24 from the pools (walked in the nesting direction)
// and an IPv6 /64 of the host's ULA /48, each only when the host can open
// a socket of that family (and the configuration allows IPv6). A subnet is
// free when it overlaps no host address or route (any table), no subnet of
// another network, vnetguard's own or libvirt's (defined or running), and
// nothing reserved. The returned definition has them as <ip> elements: it
// is stored so, which is how they are remembered.
func autoAddress(ctx context.Context, o *resolverOptions, d *netdef.Definition, own *profiles.Backend, log *slog.Logger) (*netdef.Definition, []netip.Prefix, error) {
	set, _, err := o.settings(false)
	if err != nil {
		return nil, nil, err
	}
	view, _, err := (&hostOptions{}).read()
	if err != nil {
		return nil, nil, err
	}
	others := slices.Clone(set.Reserved)
	var nets []backend.Network
	if l, err := own.Networks(ctx, true); err == nil {
		nets = append(nets, l...)
	} else {
		return nil, nil, err
	}
	lv := libvirt.New(filepath.Join(o.runDir, "intents"), log)
	if l, err := lv.Networks(ctx, true); err == nil {
		nets = append(nets, l...)
	} else {
		log.Info("libvirt's networks not considered", "error", err)
	}
	lv.Close()
	for _, n := range nets {
		if n.Backend == profiles.Name && n.Name == d.Network.Name {
			continue // being redefined
		}
		for _, def := range []*netdef.Definition{n.Live, n.Defined} {
			if def != nil {
				others = append(others, def.Network.Subnets()...)
			}
		}
	}
	occ := conflict.NewOccupied(conflict.NewIndex(view), others, nil)
	var v4, v6 netip.Prefix
	var chosen []netip.Prefix
	if set.Usable[conflict.IPv4] {
		v4, err = occ.Allocate(conflict.Request{Network: d.Network.Name, Family: conflict.IPv4, Pools: set.Pools,
			Direction: set.Direction, Usable: set.Usable})
		if err != nil {
			return nil, nil, fmt.Errorf("choose an IPv4 subnet: %w", err)
		}
		chosen = append(chosen, v4)
	}
	if set.Usable[conflict.IPv6] {
		v6, err = occ.Allocate(conflict.Request{Network: d.Network.Name, Family: conflict.IPv6, ULA: set.ULA, Usable: set.Usable})
		if err != nil {
			return nil, nil, fmt.Errorf("choose an IPv6 subnet: %w", err)
		}
		chosen = append(chosen, v6)
	}
	if len(chosen) == 0 {
		return nil, nil, errors.New("autoaddr='yes': this host can open neither IPv4 nor IPv6 sockets")
	}
	nd, err := withIPs(d, autoAddrIPs(v4, v6))
	if err != nil {
		return nil, nil, err
	}
	if err := profiles.Check(nd); err != nil {
		return nil, nil, err
	}
	return nd, chosen, nil
}

// Package conflict is vnetguard's pure engine: from a host view (addresses
// and routes of every table) and a set of virtual networks it finds the
// clashes, and it chooses free subnets to move to. It does no I/O; the
// sub-packages netlinkview, store and resolve connect it to the system.
package conflict

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
)

// HostAddress is one address configured on the host.
type HostAddress struct {
	Prefix    netip.Prefix `json:"prefix"` // address with its length, e.g. 192.168.1.5/24 (not masked)
	Interface string       `json:"interface"`
	Scope     string       `json:"scope,omitempty"` // global, link, host, site
}

// HostRoute is one route, from any routing table.
type HostRoute struct {
	Dst       netip.Prefix `json:"dst"` // masked
	Interface string       `json:"interface,omitempty"`
	Table     int          `json:"table"`          // 254 main, 255 local, others for policy routing
	Type      string       `json:"type,omitempty"` // unicast (when empty), local, broadcast, blackhole, unreachable, prohibit, throw...
	Scope     string       `json:"scope,omitempty"`
	Gateway   netip.Addr   `json:"gateway,omitzero"`
	Protocol  string       `json:"protocol,omitempty"`
}

// HostView is the host's addressing as the engine sees it.
type HostView struct {
	Addresses []HostAddress `json:"addresses"`
	Routes    []HostRoute   `json:"routes"`
	// SkippedRoutes counts routes a reader left out because they could not
	// matter to what it was asked (see hostview.ReadWithPorts). Not saved.
	SkippedRoutes int `json:"-"`
}

// maxTable is the largest Linux routing table ID.
const maxTable int64 = 1<<32 - 1

// maxHostStateSize bounds a saved host state: a million routes fit.
const maxHostStateSize = 256 << 20

// ParseHostState reads a saved host view (the JSON MarshalHostState
// writes): one JSON object with "addresses" and "routes". Unknown fields
// and trailing data are rejected, and an error names the entry, e.g.
// "routes[3]". Route destinations are masked; a route without a table is
// in the main table (254); a gateway must be of the route's family.
func ParseHostState(data []byte) (HostView, error) {
	if len(data) > maxHostStateSize {
		return HostView{}, fmt.Errorf("host state is larger than %d bytes", maxHostStateSize)
	}
	if t := bytes.TrimLeft(data, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return HostView{}, fmt.Errorf("host state: not a JSON object")
	}
	// Decode prefixes as strings first so an error can name the entry.
	var raw struct {
		Addresses []struct {
			Prefix    string `json:"prefix"`
			Interface string `json:"interface"`
			Scope     string `json:"scope"`
		} `json:"addresses"`
		Routes []struct {
			Dst       string `json:"dst"`
			Interface string `json:"interface"`
			Table     int    `json:"table"`
			Type      string `json:"type"`
			Scope     string `json:"scope"`
			Gateway   string `json:"gateway"`
			Protocol  string `json:"protocol"`
		} `json:"routes"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return HostView{}, fmt.Errorf("host state: %w", err)
	}
	if dec.More() {
		return HostView{}, fmt.Errorf("host state: trailing data after the JSON object")
	}
	v := HostView{Addresses: make([]HostAddress, 0, len(raw.Addresses)), Routes: make([]HostRoute, 0, len(raw.Routes))}
	for i, a := range raw.Addresses {
		p, err := netip.ParsePrefix(a.Prefix)
		if err != nil {
			return HostView{}, fmt.Errorf("host state: addresses[%d]: %q is not an address/length", i, a.Prefix)
		}
		v.Addresses = append(v.Addresses, HostAddress{Prefix: p, Interface: a.Interface, Scope: a.Scope})
	}
	for i, r := range raw.Routes {
		p, err := netip.ParsePrefix(r.Dst)
		if err != nil {
			return HostView{}, fmt.Errorf("host state: routes[%d]: dst %q is not a prefix", i, r.Dst)
		}
		hr := HostRoute{Dst: p.Masked(), Interface: r.Interface, Table: r.Table, Type: r.Type, Scope: r.Scope, Protocol: r.Protocol}
		if hr.Table == 0 {
			hr.Table = 254 // a state written by hand means the main table
		}
		if hr.Table < 0 || int64(hr.Table) > maxTable {
			return HostView{}, fmt.Errorf("host state: routes[%d]: table %d is not a routing table (0 to %d)", i, r.Table, maxTable)
		}
		if r.Gateway != "" {
			gw, err := netip.ParseAddr(r.Gateway)
			if err != nil || gw.Is4() != p.Addr().Is4() {
				return HostView{}, fmt.Errorf("host state: routes[%d]: gateway %q is not an address of the route's family", i, r.Gateway)
			}
			hr.Gateway = gw
		}
		v.Routes = append(v.Routes, hr)
	}
	return v, nil
}

// MarshalHostState writes a host view as indented JSON that ParseHostState
// reads back.
func MarshalHostState(h HostView) ([]byte, error) {
	for i, a := range h.Addresses {
		if !a.Prefix.IsValid() {
			return nil, fmt.Errorf("host state: addresses[%d]: no prefix", i)
		}
	}
	for i, r := range h.Routes {
		if !r.Dst.IsValid() {
			return nil, fmt.Errorf("host state: routes[%d]: no destination", i)
		}
	}
	if h.Addresses == nil {
		h.Addresses = []HostAddress{}
	}
	if h.Routes == nil {
		h.Routes = []HostRoute{}
	}
	b, err := json.MarshalIndent(h, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

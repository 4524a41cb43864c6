package netdef

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/netip"
	"slices"
	"strconv"
)

// Move is one subnet of a network moving to another, of the same family.
type Move struct {
	From, To netip.Prefix
}

// Renumber returns d's bytes with every value that belongs to a moved
// subnet rewritten: the <ip> address (and its netmask or prefix when the
// length changes; an implied length gets an explicit prefix='N' added),
// DHCP range start/end, DHCP static hosts' ip, bootp server, DNS hosts' ip,
// DNS forwarders' addr, and route address and gateway, each when it lies
// inside a moved subnet. Every other byte — elements, attributes, their
// order and quoting, namespaces, comments, white space, metadata — comes
// out unchanged. (It is a method because the package-level name Renumber
// is the OnConflict constant.)
//
// Host parts are kept: .1 stays .1, a static .10 stays .10. When the new
// subnet is smaller and a host part does not fit, a DHCP range is clamped
// into the new subnet's usable addresses (skipping the bridge's own address
// at either end) and a note says so, while the bridge address, a static
// host, a DNS host, a bootp server, a forwarder or a route that cannot be
// placed is an error: user data is never dropped or invented. A route
// inside the moved subnet that is wider than the new subnet is an error
// too.
//
// Moves must keep the family, name a subnet of the network, and land on a
// subnet overlapping none of the network's other subnets (after all moves)
// nor each other. Moves with From == To are ignored; none left returns the
// original bytes. The result is re-parsed and validated: it must raise no
// problem the original did not have.
func (d *Definition) Renumber(moves []Move) ([]byte, []string, error) {
	moves, err := checkMoves(d, moves)
	if err != nil {
		return nil, nil, err
	}
	if len(moves) == 0 {
		return bytes.Clone(d.Raw), nil, nil
	}
	r := &renumberer{raw: d.Raw, moves: moves}
	if err := r.run(); err != nil {
		return nil, nil, err
	}
	out := r.apply()
	nd, err := Parse(out)
	if err != nil {
		return nil, nil, fmt.Errorf("renumbered XML does not parse (a bug): %w", err)
	}
	nd.Path = d.Path
	if p, ok := newProblem(d.Validate(), nd.Validate()); ok {
		return nil, nil, fmt.Errorf("renumbered definition would be invalid: %w", p)
	}
	return out, r.notes, nil
}

// checkMoves drops identity moves and rejects moves that cannot apply.
func checkMoves(d *Definition, moves []Move) ([]Move, error) {
	own := d.Network.Subnets()
	var out []Move
	for _, m := range moves {
		if !m.From.IsValid() || !m.To.IsValid() {
			return nil, fmt.Errorf("invalid move %s -> %s", m.From, m.To)
		}
		if m.From.Addr().Is4() != m.To.Addr().Is4() {
			return nil, fmt.Errorf("cannot move %s to %s: different address families", m.From, m.To)
		}
		m.From, m.To = m.From.Masked(), m.To.Masked()
		if !slices.Contains(own, m.From) {
			return nil, fmt.Errorf("network %s has no subnet %s", d.Network.Name, m.From)
		}
		if m.From == m.To {
			continue
		}
		for _, o := range own {
			if o != m.From && o.Overlaps(m.To) && !movedAway(moves, o) {
				return nil, fmt.Errorf("cannot move %s to %s: it overlaps the network's other subnet %s", m.From, m.To, o)
			}
		}
		for _, p := range out {
			if p.To.Overlaps(m.To) {
				return nil, fmt.Errorf("two subnets cannot both move onto %s and %s", p.To, m.To)
			}
		}
		out = append(out, m)
	}
	return out, nil
}

// newProblem finds a problem of after that before did not have, counting
// problems per element: an already broken definition may still be moved,
// but the move itself must break nothing.
func newProblem(before, after []Problem) (Problem, bool) {
	seen := map[string]int{}
	for _, p := range before {
		seen[p.Element]++
	}
	for _, p := range after {
		if seen[p.Element] == 0 {
			return p, true
		}
		seen[p.Element]--
	}
	return Problem{}, false
}

func movedAway(moves []Move, p netip.Prefix) bool {
	for _, m := range moves {
		if m.From.Masked() == p && m.To.Masked() != p {
			return true
		}
	}
	return false
}

type patch struct {
	start, end int
	text       string
}

type renumberer struct {
	raw     []byte
	moves   []Move
	patches []patch
	notes   []string
	// the current <ip>'s move, when its subnet is moving, and its new
	// address (DHCP ranges clamped into a smaller subnet skip it)
	ipMove *Move
	ipAddr netip.Addr
}

// run walks the raw tokens, tracking the element path; it patches only
// elements of libvirt's own (unprefixed) vocabulary at known places.
func (r *renumberer) run() error {
	dec := xml.NewDecoder(bytes.NewReader(r.raw))
	var stack []string
	foreign := 0 // depth inside a prefixed (foreign) element
	for {
		start := int(dec.InputOffset())
		tok, err := dec.RawToken()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("XML: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			end := int(dec.InputOffset())
			if foreign > 0 || t.Name.Space != "" {
				foreign++
				continue
			}
			stack = append(stack, t.Name.Local)
			// Every element that holds an address is at most four deep
			// (network/ip/dhcp/range); deeper ones are not even named, so
			// a deep or long-named document costs no more than its size.
			if len(stack) > 4 {
				continue
			}
			if err := r.element(stack, t, start, end); err != nil {
				return err
			}
		case xml.EndElement:
			if foreign > 0 {
				foreign--
				continue
			}
			if len(stack) > 0 {
				if stack[len(stack)-1] == "ip" && len(stack) == 2 {
					r.ipMove = nil
				}
				stack = stack[:len(stack)-1]
			}
		}
	}
}

// element patches one start tag, if it is one that holds addresses.
func (r *renumberer) element(stack []string, t xml.StartElement, start, end int) error {
	path := joinPath(stack)
	attr := func(name string) (string, bool) {
		for _, a := range t.Attr {
			if a.Name.Space == "" && a.Name.Local == name {
				return a.Value, true
			}
		}
		return "", false
	}
	switch path {
	case "network/ip":
		return r.ipElement(t, attr, start, end)
	case "network/ip/dhcp/range":
		if r.ipMove == nil {
			return nil
		}
		return r.rangeElement(attr, start, end)
	case "network/ip/dhcp/host":
		return r.strict(attr, start, end, "ip", "static host")
	case "network/ip/dhcp/bootp":
		return r.strict(attr, start, end, "server", "bootp server")
	case "network/dns/host":
		return r.strict(attr, start, end, "ip", "DNS host")
	case "network/dns/forwarder":
		return r.strict(attr, start, end, "addr", "DNS forwarder")
	case "network/route":
		if err := r.routeElement(attr); err != nil {
			return err
		}
		if err := r.strict(attr, start, end, "address", "route"); err != nil {
			return err
		}
		return r.strict(attr, start, end, "gateway", "route gateway")
	}
	return nil
}

func joinPath(stack []string) string {
	var b bytes.Buffer
	for i, s := range stack {
		if i > 0 {
			b.WriteByte('/')
		}
		b.WriteString(s)
	}
	return b.String()
}

// ipElement moves the <ip> whose subnet is moving, and sets r.ipMove for
// its children.
func (r *renumberer) ipElement(t xml.StartElement, attr func(string) (string, bool), start, end int) error {
	r.ipMove = nil
	addrStr, _ := attr("address")
	netmask, hasNetmask := attr("netmask")
	prefix, hasPrefix := attr("prefix")
	ip := IP{Address: addrStr, Netmask: netmask, Prefix: prefix}
	p, err := ip.Subnet()
	if err != nil {
		return nil // not a subnet of ours to move; Validate reports it
	}
	var m *Move
	for i := range r.moves {
		if r.moves[i].From == p.Masked() {
			m = &r.moves[i]
		}
	}
	if m == nil {
		return nil
	}
	newAddr, ok := moveAddr(p.Addr(), *m)
	if !ok {
		return fmt.Errorf("the bridge address %s has no place in %s", p.Addr(), m.To)
	}
	r.ipMove, r.ipAddr = m, newAddr
	spans := attrSpans(r.raw, start, end)
	r.set(spans, "address", newAddr.String())
	if m.To.Bits() != m.From.Bits() {
		// libvirt reads prefix='0' as absent: then the netmask counts.
		switch {
		case hasPrefix && (prefix != "0" || !hasNetmask):
			r.set(spans, "prefix", strconv.Itoa(m.To.Bits()))
		case hasNetmask:
			r.set(spans, "netmask", netmaskString(m.To.Bits()))
		default:
			// The size was implied; insert a prefix so the new one is
			// explicit, right after the address attribute.
			if s, ok := spans["address"]; ok {
				r.patches = append(r.patches, patch{s.end + 1, s.end + 1, " prefix='" + strconv.Itoa(m.To.Bits()) + "'"})
			}
		}
	}
	return nil
}

// rangeElement moves a DHCP range of a moving <ip>, clamping it into a
// smaller subnet when it does not fit.
func (r *renumberer) rangeElement(attr func(string) (string, bool), start, end int) error {
	m := *r.ipMove
	s0, _ := attr("start")
	e0, _ := attr("end")
	s, err1 := netip.ParseAddr(s0)
	e, err2 := netip.ParseAddr(e0)
	if err1 != nil || err2 != nil || !m.From.Contains(s) || !m.From.Contains(e) {
		return nil // not inside the subnet: Validate's business, not ours
	}
	first, last := usable(m.To)
	ns, okS := moveAddr(s, m)
	ne, okE := moveAddr(e, m)
	if !okS || ns.Less(first) {
		ns = first
	}
	if !okE || last.Less(ne) {
		ne = last
	}
	if !okS || !okE {
		// A clamped edge must not hand out the bridge's own address.
		if !okS && ns == r.ipAddr {
			ns = ns.Next()
		}
		if !okE && ne == r.ipAddr {
			ne = ne.Prev()
		}
		if ne.Less(ns) {
			return fmt.Errorf("DHCP range %s-%s has no place in %s", s, e, m.To)
		}
		r.notes = append(r.notes, fmt.Sprintf("DHCP range %s-%s does not fit in %s; clamped to %s-%s", s, e, m.To, ns, ne))
	}
	spans := attrSpans(r.raw, start, end)
	r.set(spans, "start", ns.String())
	r.set(spans, "end", ne.String())
	return nil
}

// routeElement refuses a route inside a moving subnet that is wider than
// the subnet's new place: its address could not stay a network address.
func (r *renumberer) routeElement(attr func(string) (string, bool)) error {
	var rt Route
	rt.Address, _ = attr("address")
	rt.Prefix, _ = attr("prefix")
	rt.Netmask, _ = attr("netmask")
	p, err := rt.Subnet()
	if err != nil {
		return nil // Validate's business
	}
	for _, m := range r.moves {
		if m.From.Contains(p.Addr()) && p.Bits() >= m.From.Bits() && p.Bits() < m.To.Bits() {
			return fmt.Errorf("route %s lies in %s but is wider than %s", p, m.From, m.To)
		}
	}
	return nil
}

// strict moves one address attribute if it lies in a moving subnet; one
// that cannot be placed is an error.
func (r *renumberer) strict(attr func(string) (string, bool), start, end int, name, what string) error {
	v, ok := attr(name)
	if !ok {
		return nil
	}
	a, err := netip.ParseAddr(v)
	if err != nil {
		return nil // a host name (bootp server) or garbage: not an address to move
	}
	for _, m := range r.moves {
		if !m.From.Contains(a) {
			continue
		}
		na, ok := moveAddr(a, m)
		if !ok {
			return fmt.Errorf("%s %s has no place in %s (its host part does not fit)", what, a, m.To)
		}
		r.set(attrSpans(r.raw, start, end), name, na.String())
		return nil
	}
	return nil
}

func (r *renumberer) set(spans map[string]span, name, value string) {
	s, ok := spans[name]
	if !ok {
		return
	}
	if string(r.raw[s.start:s.end]) == value {
		return
	}
	r.patches = append(r.patches, patch{s.start, s.end, value})
}

func (r *renumberer) apply() []byte {
	slices.SortFunc(r.patches, func(a, b patch) int { return a.start - b.start })
	var out bytes.Buffer
	pos := 0
	for _, p := range r.patches {
		out.Write(r.raw[pos:p.start])
		out.WriteString(p.text)
		pos = p.end
	}
	out.Write(r.raw[pos:])
	return out.Bytes()
}

// span is the byte range of an attribute's value, quotes excluded.
type span struct{ start, end int }

// attrSpans finds the value span of every attribute of the start tag at
// raw[start:end]. The decoder has already checked the tag is well formed,
// so a simple scan suffices: name, '=', a quoted value, repeated.
func attrSpans(raw []byte, start, end int) map[string]span {
	spans := map[string]span{}
	i := start + 1
	for i < end && !isSpace(raw[i]) && raw[i] != '>' && raw[i] != '/' {
		i++
	}
	for i < end {
		for i < end && isSpace(raw[i]) {
			i++
		}
		if i >= end || raw[i] == '>' || raw[i] == '/' {
			break
		}
		ns := i
		for i < end && raw[i] != '=' && !isSpace(raw[i]) {
			i++
		}
		name := string(raw[ns:i])
		for i < end && (isSpace(raw[i]) || raw[i] == '=') {
			i++
		}
		if i >= end {
			break
		}
		q := raw[i]
		i++
		vs := i
		for i < end && raw[i] != q {
			i++
		}
		spans[name] = span{vs, i}
		i++
	}
	return spans
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// moveAddr keeps a's host part within m.From and puts it in m.To; false
// when it does not fit.
func moveAddr(a netip.Addr, m Move) (netip.Addr, bool) {
	bits := a.BitLen()
	off := new(big.Int).Sub(toInt(a), toInt(m.From.Masked().Addr()))
	room := new(big.Int).Lsh(big.NewInt(1), uint(bits-m.To.Bits()))
	if off.Sign() < 0 || off.Cmp(room) >= 0 {
		return netip.Addr{}, false
	}
	return fromInt(new(big.Int).Add(toInt(m.To.Masked().Addr()), off), a.Is4()), true
}

// usable is the first and last address a host may have in p: the network
// and (IPv4) broadcast addresses are not.
func usable(p netip.Prefix) (netip.Addr, netip.Addr) {
	first := p.Masked().Addr().Next()
	last := LastAddr(p)
	if p.Addr().Is4() {
		last = last.Prev()
	}
	return first, last
}

func toInt(a netip.Addr) *big.Int { return new(big.Int).SetBytes(a.AsSlice()) }

func fromInt(n *big.Int, v4 bool) netip.Addr {
	size := 16
	if v4 {
		size = 4
	}
	b := n.FillBytes(make([]byte, size))
	a, _ := netip.AddrFromSlice(b)
	return a
}

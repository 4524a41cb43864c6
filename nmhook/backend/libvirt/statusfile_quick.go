package libvirt

import (
	"bytes"
	"encoding/xml"
	"strings"

	"github.com/vnetguard/vnetguard/netdef"
)

// quickStatus is the status-file reader of every check (the dispatcher
// hook's, a daemon pass's): in one scan of the file, with no tokenizer and
// no reflection, it builds the same model that readStatusFile followed by
// netdef.Parse would build, but only for the plain documents libvirt
// writes. Anything outside that subset (an element or attribute the
// subset does not model, an entity or character reference, a comment or
// CDATA inside the wrapper, a non-ASCII or control byte, a namespace it
// would have to resolve from an ancestor, a repeated element that the
// model keeps once) makes it give up, false, and the caller takes the
// general path. What it accepts, the general path accepts with an equal
// model (FuzzQuickStatusAgrees holds it to that), and it is then validated
// by the same validator.
//
// name is the file's network name; the inner <network> must carry it.
func quickStatus(b []byte, name string) (*netdef.Definition, bool) {
	s := scanner{b: b}
	if !s.prolog() {
		return nil, false
	}
	el, ok := s.startTag()
	if !ok || el.name != "networkstatus" || len(el.attrs) != 0 || el.empty {
		return nil, false
	}
	var inner []byte
	var model netdef.Network
	found := false
	for {
		s.space()
		if s.peekEnd() {
			if !s.endTag("networkstatus") {
				return nil, false
			}
			break
		}
		start := s.pos
		child, ok := s.startTag()
		if !ok {
			return nil, false
		}
		if child.name != "network" {
			if localName(child.name) == "network" {
				return nil, false // the general path counts it as a <network>
			}
			// libvirt's own bookkeeping (class_id, floor): any plain
			// element, skipped.
			if !s.skip(child, 1) {
				return nil, false
			}
			continue
		}
		if found || !s.network(child, &model) {
			return nil, false
		}
		found = true
		inner = b[start:s.pos]
	}
	if !found || !s.epilog() || model.Name != name {
		return nil, false
	}
	return &netdef.Definition{Raw: inner, Network: model}, true
}

// scanner reads the subset of XML quickStatus accepts.
type scanner struct {
	b   []byte
	pos int
}

type tag struct {
	name  string
	attrs []attr
	empty bool // <x/>
}

type attr struct{ name, value string }

// maxQuickDepth bounds nesting in skipped elements (metadata, libvirt's
// bookkeeping); deeper documents take the general path.
const maxQuickDepth = 32

func (s *scanner) space() {
	for s.pos < len(s.b) {
		switch s.b[s.pos] {
		case ' ', '\t', '\n':
			s.pos++
		default:
			return
		}
	}
}

// prolog skips whitespace and comments before the root.
func (s *scanner) prolog() bool {
	for {
		s.space()
		if !bytes.HasPrefix(s.b[s.pos:], []byte("<!--")) {
			return s.pos < len(s.b)
		}
		if !s.comment() {
			return false
		}
	}
}

// epilog: only whitespace and comments after the root.
func (s *scanner) epilog() bool {
	for {
		s.space()
		if s.pos == len(s.b) {
			return true
		}
		if !bytes.HasPrefix(s.b[s.pos:], []byte("<!--")) || !s.comment() {
			return false
		}
	}
}

// comment reads <!-- ... --> whose text is plain and holds no "--".
func (s *scanner) comment() bool {
	s.pos += 4
	end := bytes.Index(s.b[s.pos:], []byte("--"))
	if end < 0 || !plainText(s.b[s.pos:s.pos+end]) || !bytes.HasPrefix(s.b[s.pos+end:], []byte("-->")) {
		return false
	}
	s.pos += end + 3
	return true
}

func (s *scanner) peekEnd() bool {
	return bytes.HasPrefix(s.b[s.pos:], []byte("</"))
}

// endTag reads </name> exactly.
func (s *scanner) endTag(name string) bool {
	rest := s.b[s.pos:]
	if len(rest) < len(name)+3 || rest[0] != '<' || rest[1] != '/' ||
		string(rest[2:2+len(name)]) != name || rest[2+len(name)] != '>' {
		return false
	}
	s.pos += len(name) + 3
	return true
}

// startTag reads <name attr='v' attr="v" ...> or .../>: ASCII names,
// whitespace before every attribute, values of plain characters, no
// attribute local name twice.
func (s *scanner) startTag() (tag, bool) {
	var t tag
	if s.pos >= len(s.b) || s.b[s.pos] != '<' {
		return t, false
	}
	s.pos++
	var ok bool
	if t.name, ok = s.name(); !ok {
		return t, false
	}
	for {
		sp := s.pos
		s.space()
		if s.pos >= len(s.b) {
			return t, false
		}
		switch s.b[s.pos] {
		case '>':
			s.pos++
			return t, true
		case '/':
			if s.pos+1 < len(s.b) && s.b[s.pos+1] == '>' {
				s.pos += 2
				t.empty = true
				return t, true
			}
			return t, false
		}
		if s.pos == sp {
			return t, false // no space before the attribute
		}
		n, ok := s.name()
		if !ok {
			return t, false
		}
		s.space()
		if s.pos >= len(s.b) || s.b[s.pos] != '=' {
			return t, false
		}
		s.pos++
		s.space()
		if s.pos >= len(s.b) || (s.b[s.pos] != '\'' && s.b[s.pos] != '"') {
			return t, false
		}
		q := s.b[s.pos]
		s.pos++
		end := bytes.IndexByte(s.b[s.pos:], q)
		if end < 0 || !plainValue(s.b[s.pos:s.pos+end]) {
			return t, false
		}
		v := string(s.b[s.pos : s.pos+end])
		s.pos += end + 1
		for _, a := range t.attrs {
			if localName(a.name) == localName(n) {
				return t, false
			}
		}
		t.attrs = append(t.attrs, attr{n, v})
	}
}

// name reads an ASCII XML name with at most one colon, not at either end.
func (s *scanner) name() (string, bool) {
	start := s.pos
	colons := 0
	for s.pos < len(s.b) {
		c := s.b[s.pos]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', c == '_':
		case '0' <= c && c <= '9', c == '-', c == '.':
			if s.pos == start {
				return "", false
			}
		case c == ':':
			colons++
		default:
			goto done
		}
		s.pos++
	}
done:
	n := string(s.b[start:s.pos])
	if n == "" || colons > 1 || n[0] == ':' || n[len(n)-1] == ':' {
		return "", false
	}
	if i := strings.IndexByte(n, ':'); i >= 0 && !nameStart(n[i+1]) {
		return "", false
	}
	return n, true
}

func nameStart(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_'
}

func localName(n string) string {
	if i := strings.IndexByte(n, ':'); i >= 0 {
		return n[i+1:]
	}
	return n
}

func prefixOf(n string) string {
	if i := strings.IndexByte(n, ':'); i >= 0 {
		return n[:i]
	}
	return ""
}

// plainValue: printable ASCII but the markup characters.
func plainValue(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c > 0x7e || c == '<' || c == '&' || c == '>' {
			return false
		}
	}
	return true
}

// plainText: plainValue, also tabs and newlines.
func plainText(b []byte) bool {
	for _, c := range b {
		if (c < 0x20 && c != '\t' && c != '\n') || c > 0x7e || c == '<' || c == '&' || c == '>' {
			return false
		}
	}
	return true
}

// text reads character data up to the next '<'.
func (s *scanner) text() ([]byte, bool) {
	end := bytes.IndexByte(s.b[s.pos:], '<')
	if end < 0 {
		return nil, false
	}
	t := s.b[s.pos : s.pos+end]
	s.pos += end
	return t, plainText(t)
}

// blank reads character data that must be whitespace only.
func (s *scanner) blank() bool {
	t, ok := s.text()
	return ok && len(bytes.Trim(t, " \t\n")) == 0
}

// skip reads the rest of an element whose start tag was read: plain
// text and plain elements, no comments, nested at most maxQuickDepth.
func (s *scanner) skip(t tag, depth int) bool {
	if t.empty {
		return true
	}
	if depth > maxQuickDepth {
		return false
	}
	for {
		if _, ok := s.text(); !ok {
			return false
		}
		if s.peekEnd() {
			return s.endTag(t.name)
		}
		child, ok := s.startTag()
		if !ok || !s.skip(child, depth+1) {
			return false
		}
	}
}

// children reads the children of an element whose start tag was read,
// with whitespace between them, handing each start tag to f.
func (s *scanner) children(t tag, f func(child tag) bool) bool {
	if t.empty {
		return true
	}
	for {
		if !s.blank() {
			return false
		}
		if s.peekEnd() {
			return s.endTag(t.name)
		}
		child, ok := s.startTag()
		if !ok || !f(child) {
			return false
		}
	}
}

// leaf: an element with no children (whitespace inside is fine).
func (s *scanner) leaf(t tag) bool {
	return s.children(t, func(tag) bool { return false })
}

// attrs hands each attribute to its field; an attribute with no field
// fails. Names must be unprefixed (a prefixed one would need namespace
// resolution to be told from an unknown attribute).
func attrs(t tag, fields map[string]*string) bool {
	for _, a := range t.attrs {
		p, ok := fields[a.name]
		if !ok {
			return false
		}
		*p = a.value
	}
	return true
}

// textOnly reads an element of text alone (<name>, <uuid>).
func (s *scanner) textOnly(t tag) (string, bool) {
	if len(t.attrs) != 0 {
		return "", false
	}
	if t.empty {
		return "", true
	}
	v, ok := s.text()
	if !ok || !s.endTag(t.name) {
		return "", false
	}
	return string(v), true
}

// network reads <network> into n, for the elements and attributes it
// models; anything else fails.
func (s *scanner) network(t tag, n *netdef.Network) bool {
	n.XMLName = xml.Name{Local: "network"}
	if !attrs(t, map[string]*string{"ipv6": &n.IPv6, "trustGuestRxFilters": &n.TrustGuestRxFilters,
		"connections": &n.Connections, "autoaddr": &n.AutoAddr}) {
		return false
	}
	seen := map[string]bool{}
	return s.children(t, func(c tag) bool {
		if c.name != "ip" {
			if seen[c.name] {
				return false
			}
			seen[c.name] = true
		}
		switch c.name {
		case "name":
			v, ok := s.textOnly(c)
			n.Name = v
			return ok
		case "uuid":
			v, ok := s.textOnly(c)
			n.UUID = v
			return ok
		case "metadata":
			n.Metadata = &netdef.Metadata{}
			return s.metadata(c, n.Metadata)
		case "forward":
			n.Forward = &netdef.Forward{}
			return s.forward(c, n.Forward)
		case "bridge":
			br := &netdef.Bridge{}
			n.Bridge = br
			return attrs(c, map[string]*string{"name": &br.Name, "stp": &br.STP, "delay": &br.Delay,
				"macTableManager": &br.MACTableManager, "zone": &br.Zone}) && s.leaf(c)
		case "mac":
			n.MAC = &netdef.MAC{}
			return attrs(c, map[string]*string{"address": &n.MAC.Address}) && s.leaf(c)
		case "mtu":
			n.MTU = &netdef.MTU{}
			return attrs(c, map[string]*string{"size": &n.MTU.Size}) && s.leaf(c)
		case "domain":
			d := &netdef.Domain{}
			n.Domain = d
			return attrs(c, map[string]*string{"name": &d.Name, "localOnly": &d.LocalOnly, "register": &d.Register}) && s.leaf(c)
		case "dns":
			d := &netdef.DNS{}
			n.DNS = d
			return attrs(c, map[string]*string{"enable": &d.Enable, "forwardPlainNames": &d.ForwardPlainNames}) && s.leaf(c)
		case "ip":
			n.IPs = append(n.IPs, netdef.IP{})
			return s.ip(c, &n.IPs[len(n.IPs)-1])
		}
		return false
	})
}

// metadata keeps the element's inner bytes verbatim and decodes the
// vnetguard policy elements among its children. A child's namespace is
// taken from its own declarations only: the wrapper and <network> declare
// none (any attribute on them fails), and a prefix the child does not
// declare itself fails.
func (s *scanner) metadata(t tag, m *netdef.Metadata) bool {
	if len(t.attrs) != 0 {
		return false
	}
	if t.empty {
		return true
	}
	start := s.pos
	for {
		if _, ok := s.text(); !ok {
			return false
		}
		if s.peekEnd() {
			m.Inner = string(s.b[start:s.pos])
			return s.endTag(t.name)
		}
		c, ok := s.startTag()
		if !ok {
			return false
		}
		space, ok := ownNamespace(c)
		if !ok {
			return false
		}
		if space == netdef.PolicyNamespace && localName(c.name) == "policy" {
			p := netdef.PolicyElement{}
			for _, a := range c.attrs {
				if localName(a.name) == "on-conflict" {
					p.OnConflict = a.value
				}
			}
			m.Policies = append(m.Policies, p)
		}
		if !s.skip(c, 1) {
			return false
		}
	}
}

// ownNamespace is the namespace of an element whose ancestors declare
// none: its prefix's (or the default) declaration on the element itself,
// else none. A prefix it does not declare fails (it would stay unresolved).
func ownNamespace(t tag) (string, bool) {
	p := prefixOf(t.name)
	want := "xmlns"
	if p != "" {
		want = "xmlns:" + p
	}
	for _, a := range t.attrs {
		if a.name == want {
			return a.value, true
		}
	}
	return "", p == "" || p == "xml"
}

func (s *scanner) forward(t tag, f *netdef.Forward) bool {
	if !attrs(t, map[string]*string{"mode": &f.Mode, "dev": &f.Dev, "managed": &f.Managed}) {
		return false
	}
	return s.children(t, func(c tag) bool {
		switch c.name {
		case "nat":
			if f.NAT != nil {
				return false
			}
			f.NAT = &netdef.NAT{}
			return s.nat(c, f.NAT)
		case "interface":
			f.Interfaces = append(f.Interfaces, netdef.ForwardInterface{})
			fi := &f.Interfaces[len(f.Interfaces)-1]
			return attrs(c, map[string]*string{"dev": &fi.Dev, "connections": &fi.Connections}) && s.leaf(c)
		}
		return false
	})
}

func (s *scanner) nat(t tag, n *netdef.NAT) bool {
	if !attrs(t, map[string]*string{"ipv6": &n.IPv6}) {
		return false
	}
	return s.children(t, func(c tag) bool {
		switch c.name {
		case "address":
			n.Addresses = append(n.Addresses, netdef.NATRange{})
			r := &n.Addresses[len(n.Addresses)-1]
			return attrs(c, map[string]*string{"start": &r.Start, "end": &r.End}) && s.leaf(c)
		case "port":
			n.Ports = append(n.Ports, netdef.NATPorts{})
			r := &n.Ports[len(n.Ports)-1]
			return attrs(c, map[string]*string{"start": &r.Start, "end": &r.End}) && s.leaf(c)
		}
		return false
	})
}

func (s *scanner) ip(t tag, ip *netdef.IP) bool {
	if !attrs(t, map[string]*string{"family": &ip.Family, "address": &ip.Address, "netmask": &ip.Netmask,
		"prefix": &ip.Prefix, "localPtr": &ip.LocalPtr}) {
		return false
	}
	return s.children(t, func(c tag) bool {
		if c.name != "dhcp" || ip.DHCP != nil || len(c.attrs) != 0 {
			return false
		}
		d := &netdef.DHCP{}
		ip.DHCP = d
		return s.children(c, func(e tag) bool {
			switch e.name {
			case "range":
				d.Ranges = append(d.Ranges, netdef.DHCPRange{})
				r := &d.Ranges[len(d.Ranges)-1]
				return attrs(e, map[string]*string{"start": &r.Start, "end": &r.End}) && s.leaf(e)
			case "host":
				d.Hosts = append(d.Hosts, netdef.DHCPHost{})
				h := &d.Hosts[len(d.Hosts)-1]
				return attrs(e, map[string]*string{"mac": &h.MAC, "id": &h.ID, "name": &h.Name, "ip": &h.IP}) && s.leaf(e)
			}
			return false
		})
	})
}

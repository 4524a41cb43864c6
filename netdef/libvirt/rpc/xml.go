package rpc

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// The XML handled here is libvirt's own output, read with encoding/xml's
// tokenizer and byte offsets rather than unmarshalled into structs: a
// struct would drop every element it does not name, and SetLink must send
// libvirt back the interface exactly as libvirt described it, changed only
// in its <link>.

// domainNICs extracts from a domain's live XML the interfaces whose
// <source network=…> is network. A domain that is not running (its XML has
// no id attribute: libvirt returns the inactive definition for a domain
// that stopped after it was listed) has none.
func domainNICs(data []byte, network string) ([]GuestNIC, error) {
	return domainNICsOn(data, network, "")
}

// domainNICsOn is domainNICs plus, when bridge is given, the interfaces
// attached straight to that bridge (<interface type='bridge'><source
// bridge=…>): guests of the network all the same, that libvirt does not
// count as its ports.
func domainNICsOn(data []byte, network, bridge string) ([]GuestNIC, error) {
	d := xml.NewDecoder(bytes.NewReader(data))
	var (
		stack            []string // local names of the open elements
		name, uuid       string
		running, sawRoot bool
		nics             []GuestNIC
		cur              *GuestNIC // the interface being read
		curNet           string
		curStart         int64
		text             *string // where the current element's text goes
	)
	for {
		off := d.InputOffset()
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("domain XML: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			stack = append(stack, t.Name.Local)
			text = nil
			switch path := strings.Join(stack, "/"); {
			case len(stack) == 1:
				if t.Name.Local != "domain" {
					return nil, fmt.Errorf("domain XML: root element is <%s>", t.Name.Local)
				}
				_, running = attr(t, "id")
				sawRoot = true
			case path == "domain/name":
				text = &name
			case path == "domain/uuid":
				text = &uuid
			case path == "domain/devices/interface":
				cur, curNet, curStart = &GuestNIC{}, "", off
			case cur == nil || len(stack) != 4:
			case t.Name.Local == "mac":
				cur.MAC, _ = attr(t, "address")
			case t.Name.Local == "target":
				cur.Target, _ = attr(t, "dev")
			case t.Name.Local == "source":
				curNet, _ = attr(t, "network")
				cur.Bridge, _ = attr(t, "bridge")
				cur.PortID, _ = attr(t, "portid")
			}
		case xml.CharData:
			if text != nil {
				*text += string(t)
			}
		case xml.EndElement:
			if cur != nil && len(stack) == 3 {
				if curNet == network || (curNet == "" && bridge != "" && cur.Bridge == bridge) {
					cur.XML = string(data[curStart:d.InputOffset()])
					nics = append(nics, *cur)
				}
				cur = nil
			}
			stack = stack[:len(stack)-1]
			text = nil
		}
	}
	if !sawRoot {
		return nil, errors.New("domain XML: no <domain> element")
	}
	if !running {
		return nil, nil
	}
	for i := range nics {
		nics[i].Domain, nics[i].DomainUUID = strings.TrimSpace(name), strings.TrimSpace(uuid)
	}
	return nics, nil
}

// setLinkState returns the <interface> element ifaceXML with its link
// state set: the first <link> child is replaced by <link state='up'/> or
// <link state='down'/> (further ones, which libvirt never writes, are
// dropped), or such a child is added at the end. Every other byte stays.
func setLinkState(ifaceXML string, up bool) (string, error) {
	link := "<link state='down'/>"
	if up {
		link = "<link state='up'/>"
	}
	type span struct{ start, end int64 }
	var (
		d         = xml.NewDecoder(strings.NewReader(ifaceXML))
		depth     int
		links     []span
		linkStart int64 = -1
		rootStart span  // the root's start tag
		rootEnd   span  // the root's end tag (empty if self-closing)
		sawRoot   bool
	)
	for {
		off := d.InputOffset()
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", fmt.Errorf("interface XML: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			switch {
			case depth == 1:
				if sawRoot || t.Name.Local != "interface" {
					return "", fmt.Errorf("interface XML: unexpected root <%s>", t.Name.Local)
				}
				sawRoot = true
				rootStart = span{off, d.InputOffset()}
			case depth == 2 && t.Name.Local == "link" && t.Name.Space == "":
				linkStart = off
			}
		case xml.EndElement:
			switch {
			case depth == 1:
				rootEnd = span{off, d.InputOffset()}
			case depth == 2 && linkStart >= 0:
				links = append(links, span{linkStart, d.InputOffset()})
				linkStart = -1
			}
			depth--
		case xml.CharData:
			if depth == 0 && len(bytes.TrimSpace(t)) > 0 {
				return "", errors.New("interface XML: text outside the element")
			}
		}
	}
	if !sawRoot {
		return "", errors.New("interface XML: no <interface> element")
	}
	var b strings.Builder
	switch {
	case len(links) > 0:
		last := int64(0)
		for i, l := range links {
			b.WriteString(ifaceXML[last:l.start])
			if i == 0 {
				b.WriteString(link)
			}
			last = l.end
		}
		b.WriteString(ifaceXML[last:])
	case rootEnd.start == rootEnd.end:
		// <interface …/>: open it up. The start tag ends in "/>".
		tag := strings.TrimRight(ifaceXML[rootStart.start:rootStart.end-2], " \t\r\n")
		b.WriteString(ifaceXML[:rootStart.start])
		b.WriteString(tag + ">" + link + "</interface>")
		b.WriteString(ifaceXML[rootStart.end:])
	default:
		b.WriteString(ifaceXML[:rootEnd.start])
		b.WriteString(link)
		b.WriteString(ifaceXML[rootEnd.start:])
	}
	return b.String(), nil
}

// xmlName returns the text of the root element's <name> child, to name a
// network in an error message; "" if there is none.
func xmlName(s string) string {
	d := xml.NewDecoder(strings.NewReader(s))
	depth, inName := 0, false
	var name strings.Builder
	for {
		tok, err := d.Token()
		if err != nil {
			return strings.TrimSpace(name.String())
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			inName = depth == 2 && t.Name.Local == "name"
		case xml.EndElement:
			if inName {
				return strings.TrimSpace(name.String())
			}
			depth--
		case xml.CharData:
			if inName {
				name.Write(t)
			}
		}
	}
}

func attr(e xml.StartElement, local string) (string, bool) {
	for _, a := range e.Attr {
		if a.Name.Local == local && a.Name.Space == "" {
			return a.Value, true
		}
	}
	return "", false
}

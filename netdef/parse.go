package netdef

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
)

// maxDefinitionSize bounds what Parse reads: libvirt's own limit for a
// network XML is far below this.
const maxDefinitionSize = 10 << 20

// PolicyNamespace is the XML namespace of vnetguard's policy element.
const PolicyNamespace = "urn:x-vnetguard:policy:1"

// Definition is one parsed network definition and the bytes it came from.
type Definition struct {
	Path    string  // file name for messages; may be empty
	Raw     []byte  // the original bytes, never modified
	Network Network // the model

	lines map[string]int // element path ("network/ip[0]/dhcp[0]/range[1]") -> line
}

// Parse reads a network definition.
func Parse(data []byte) (*Definition, error) {
	if len(data) > maxDefinitionSize {
		return nil, fmt.Errorf("definition is larger than %d bytes", maxDefinitionSize)
	}
	d := &Definition{Raw: data, lines: map[string]int{}}
	if err := d.scan(); err != nil {
		return nil, err
	}
	if err := xml.Unmarshal(data, &d.Network); err != nil {
		return nil, fmt.Errorf("XML: %w", err)
	}
	return d, nil
}

// ParseFile reads and parses a file; errors name it.
func ParseFile(path string) (*Definition, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	d, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	d.Path = path
	return d, nil
}

// scan walks the tokens once: it checks the document has one <network>
// root and no repeated attribute (encoding/xml lets those through, and the
// model and the renumberer would then disagree on which one counts), and
// records the line of every element by path.
func (d *Definition) scan() error {
	dec := xml.NewDecoder(bytes.NewReader(d.Raw))
	type frame struct {
		path   string
		counts map[string]int
	}
	var stack []frame
	roots := 0
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var se *xml.SyntaxError
			if errors.As(err, &se) {
				return fmt.Errorf("line %d: malformed XML: %s", se.Line, se.Msg)
			}
			return fmt.Errorf("malformed XML: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			line, _ := dec.InputPos()
			if err := uniqueAttrs(t); err != nil {
				return fmt.Errorf("line %d: malformed XML: %w", line, err)
			}
			if len(stack) == 0 {
				roots++
				if t.Name.Local != "network" || t.Name.Space != "" {
					return fmt.Errorf("line %d: root element is <%s>, want <network>", line, t.Name.Local)
				}
				if roots > 1 {
					return fmt.Errorf("line %d: more than one root element", line)
				}
				stack = append(stack, frame{path: "network", counts: map[string]int{}})
				d.lines["network"] = line
				continue
			}
			parent := &stack[len(stack)-1]
			name := t.Name.Local
			if t.Name.Space != "" {
				name = t.Name.Space + " " + name
			}
			path := parent.path + "/" + name + "[" + strconv.Itoa(parent.counts[name]) + "]"
			parent.counts[name]++
			d.lines[path] = line
			stack = append(stack, frame{path: path, counts: map[string]int{}})
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		}
	}
	if roots == 0 {
		return errors.New("no <network> element")
	}
	return nil
}

func uniqueAttrs(t xml.StartElement) error {
	for i, a := range t.Attr {
		for _, b := range t.Attr[:i] {
			if a.Name == b.Name {
				return fmt.Errorf("attribute %s repeated in <%s>", a.Name.Local, t.Name.Local)
			}
		}
	}
	return nil
}

// Line returns the line of the element at path (as in Problem.Element,
// e.g. "network/ip[0]/dhcp[0]/range[1]"; namespaced elements read
// "URI local"), or 0 when there is none.
func (d *Definition) Line(path string) int { return d.lines[path] }

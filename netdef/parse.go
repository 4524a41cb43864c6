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

// Limits on what Parse accepts, whatever the source (a file, libvirt): a
// hostile or broken document must fail fast with bounded memory. A real
// network definition is a few KB and nests six elements deep.
const (
	// MaxDefinitionSize bounds the bytes read and parsed: libvirt's RPC
	// carries no string longer (VIR_NET_MESSAGE_STRING_MAX).
	MaxDefinitionSize = 4 << 20
	// MaxDepth bounds element nesting: no element may have more ancestors.
	// It is libxml2's default (xmlParserMaxDepth), counted as libxml2
	// counts, so vnetguard refuses no document libvirt accepts and libvirt
	// accepts none deeper (libvirt 9.0 takes 257 levels, root included,
	// and refuses 258: "Excessive depth in document: 256").
	MaxDepth = 256
)

// ErrTooLarge and ErrTooDeep are wrapped by Parse's and ParseFile's errors
// when a definition goes past MaxDefinitionSize or MaxDepth.
var (
	ErrTooLarge = fmt.Errorf("definition is larger than the limit of %d bytes (%d MiB)", MaxDefinitionSize, MaxDefinitionSize>>20)
	ErrTooDeep  = fmt.Errorf("elements nest deeper than the limit of %d levels below the root", MaxDepth)
)

// PolicyNamespace is the XML namespace of vnetguard's policy element.
const PolicyNamespace = "urn:x-vnetguard:policy:1"

// Definition is one parsed network definition and the bytes it came from.
type Definition struct {
	Path    string  // file name for messages; may be empty
	Raw     []byte  // the original bytes, never modified
	Network Network // the model

	lines map[string]int // element path ("network/ip[0]/dhcp[0]/range[1]") -> line
}

// Parse reads a network definition; one past MaxDefinitionSize or
// MaxDepth is refused (ErrTooLarge, ErrTooDeep) before it is decoded.
func Parse(data []byte) (*Definition, error) {
	if len(data) > MaxDefinitionSize {
		return nil, ErrTooLarge
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

// ParseFile reads and parses a file; errors name it. It reads at most
// MaxDefinitionSize bytes (and one more to tell that there are more).
func ParseFile(path string) (*Definition, error) {
	b, err := readLimited(path)
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

// readLimited reads a file but stops one byte past MaxDefinitionSize: a
// huge file (or /dev/zero) costs no more than the limit.
func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxDefinitionSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(b) > MaxDefinitionSize {
		return nil, fmt.Errorf("%s: %w", path, ErrTooLarge)
	}
	return b, nil
}

// Lines are recorded only for elements the validator can name: libvirt's
// (or vnetguard's, or dnsmasq's) vocabulary, short names, at most
// maxLinedDepth deep (the deepest it names is network/ip/dhcp/range/lease).
// Every recorded path is then short. Recording a path built from all the
// ancestors' names for every element made memory grow with the square of
// the depth, and long namespace URIs multiplied that (a 22 KB file took
// 400 MB, a 700 KB one over 6 GB).
const (
	maxLinedDepth = 6
	maxLinedName  = 32
)

// scan walks the tokens once: it checks the document has one <network>
// root and no repeated attribute (encoding/xml lets those through, and the
// model and the renumberer would then disagree on which one counts), that
// nothing nests deeper than MaxDepth, and records by path the line of each
// element the validator can name.
func (d *Definition) scan() error {
	dec := xml.NewDecoder(bytes.NewReader(d.Raw))
	// path and counts are empty for an element whose line is not recorded
	// (nor any of its descendants').
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
			if len(stack) > MaxDepth { // its ancestors
				return fmt.Errorf("line %d: %w", line, ErrTooDeep)
			}
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
			if parent.counts == nil || len(stack) >= maxLinedDepth || !linedName(t.Name) {
				stack = append(stack, frame{})
				continue
			}
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

// linedName reports whether an element may be one the validator names.
func linedName(n xml.Name) bool {
	if len(n.Local) > maxLinedName {
		return false
	}
	return n.Space == "" || n.Space == PolicyNamespace || n.Space == dnsmasqNS
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
// "URI local"), or 0 when there is none or it was not recorded (see
// maxLinedDepth).
func (d *Definition) Line(path string) int { return d.lines[path] }

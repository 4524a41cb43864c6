package libvirt

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/vnetguard/vnetguard/netdef/libvirt/rpc"
	"github.com/vnetguard/vnetguard/nmhook/backend"
)

// StatusDir is where libvirt's network driver (libvirtd or virtnetworkd)
// keeps the live XML of each running network, NAME.xml, root-only. Reading
// these is how a check costs no call into libvirt at all; acting always
// re-reads through libvirt.
const StatusDir = "/run/libvirt/network"

// maxStatusFile bounds what is read of one status file.
const maxStatusFile = 4 << 20

// errUnexpected marks status files that are not as expected: the caller
// falls back to asking libvirt.
var errUnexpected = errors.New("unexpected libvirt status file")

// readStatusFiles returns the running networks from dir. Any file that is
// not a <networkstatus> wrapping exactly one <network> named as the file
// is, makes the whole read fail: a partial picture would miss a network.
func readStatusFiles(dir string) ([]rpc.Network, error) {
	return readEach(dir, readStatusFile)
}

// readEach reads every dir/*.xml with read, in parallel; any error fails
// the whole read. A missing dir is an error (fs.ErrNotExist).
func readEach[T any](dir string, read func(path string) (T, error)) ([]T, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.xml"))
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(dir); err != nil {
		return nil, err
	}
	out := make([]T, len(paths))
	errs := make([]error, len(paths))
	parallelFor(len(paths), func(i int) { out[i], errs[i] = read(paths[i]) })
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

func readStatusFile(path string) (rpc.Network, error) {
	b, err := readStatusBytes(path)
	if err != nil {
		return rpc.Network{}, err
	}
	return statusNetwork(path, b)
}

// readStatusBytes reads one status file, up to maxStatusFile bytes.
func readStatusBytes(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxStatusFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxStatusFile {
		return nil, fmt.Errorf("%s: %w: larger than %d bytes", path, errUnexpected, maxStatusFile)
	}
	return b, nil
}

// statusNetwork cuts the <network> out of a status file's bytes.
func statusNetwork(path string, b []byte) (rpc.Network, error) {
	inner, err := innerNetwork(b)
	if err != nil {
		return rpc.Network{}, fmt.Errorf("%s: %w: %v", path, errUnexpected, err)
	}
	name := strings.TrimSuffix(filepath.Base(path), ".xml")
	if got := networkName(inner); got != name {
		return rpc.Network{}, fmt.Errorf("%s: %w: it holds network %q", path, errUnexpected, got)
	}
	return rpc.Network{Name: name, Active: true, LiveXML: string(inner)}, nil
}

// readStatusNetworks is readStatusFiles with each network parsed and
// validated, as convert does, reading each file once: a plain file (what
// libvirt writes) through quickStatus, any other through the general
// reader and parser. Either way the outcome is the same; the quick one
// costs a few microseconds instead of some tens.
func readStatusNetworks(dir string) ([]backend.Network, error) {
	return readEach(dir, readStatusNetwork)
}

func readStatusNetwork(path string) (backend.Network, error) {
	b, err := readStatusBytes(path)
	if err != nil {
		return backend.Network{}, err
	}
	name := strings.TrimSuffix(filepath.Base(path), ".xml")
	if d, ok := quickStatus(b, name); ok {
		d.Path = "libvirt:" + name
		// The same validation as convert's; a network it finds fault
		// with is parsed again the general way, for the same message.
		if len(d.Validate()) == 0 {
			return backend.Network{Backend: Name, Name: name, Active: true, Live: d}, nil
		}
	}
	n, err := statusNetwork(path, b)
	if err != nil {
		return backend.Network{}, err
	}
	return convert(n), nil
}

// innerNetwork returns the bytes of the one <network> element inside the
// <networkstatus> root, as libvirt wrote them.
func innerNetwork(b []byte) ([]byte, error) {
	d := xml.NewDecoder(bytes.NewReader(b))
	depth := 0
	var start int64 = -1
	var found []byte
	for {
		before := d.InputOffset()
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			switch {
			case depth == 1 && t.Name.Local != "networkstatus":
				return nil, fmt.Errorf("root element <%s>, want <networkstatus>", t.Name.Local)
			case depth == 2 && t.Name.Local == "network":
				if found != nil {
					return nil, errors.New("more than one <network>")
				}
				start = before
			}
		case xml.EndElement:
			if depth == 2 && t.Name.Local == "network" && start >= 0 {
				found = b[start:d.InputOffset()]
				start = -1
			}
			depth--
		}
	}
	if depth != 0 {
		return nil, errors.New("truncated")
	}
	if found == nil {
		return nil, errors.New("no <network> inside")
	}
	return found, nil
}

// networkName is the text of the first <name> child of <network>.
func networkName(network []byte) string {
	var n struct {
		Name string `xml:"name"`
	}
	if xml.Unmarshal(network, &n) != nil {
		return ""
	}
	return n.Name
}

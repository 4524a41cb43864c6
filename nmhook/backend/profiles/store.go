package profiles

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/vnetguard/vnetguard/netdef"
	"github.com/vnetguard/vnetguard/nmhook/state"
)

// DefaultDir holds vnetguard's own network definitions, NAME.xml each.
const DefaultDir = "/etc/vnetguard/networks"

// Store is where definitions (Dir: NAME.xml, autostart/NAME markers) and
// the live XML of running networks (LiveDir: NAME.xml, the definition as
// it runs now, renumbered perhaps) are kept.
type Store struct {
	Dir     string
	LiveDir string
}

func (s Store) defPath(name string) string  { return filepath.Join(s.Dir, name+".xml") }
func (s Store) livePath(name string) string { return filepath.Join(s.LiveDir, name+".xml") }
func (s Store) autoPath(name string) string { return filepath.Join(s.Dir, "autostart", name) }

// Names lists the defined networks, sorted.
func (s Store) Names() ([]string, error) {
	ents, err := os.ReadDir(s.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if n, ok := strings.CutSuffix(e.Name(), ".xml"); ok && !e.IsDir() && !strings.HasPrefix(n, ".") {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out, nil
}

// Exists tells whether a network is defined.
func (s Store) Exists(name string) bool {
	_, err := os.Stat(s.defPath(name))
	return err == nil
}

// Load reads and validates a definition; its file must be named after it.
func (s Store) Load(name string) (*netdef.Definition, error) {
	return loadValid(s.defPath(name), name)
}

// Live reads the live XML of a running network; nil when there is none.
func (s Store) Live(name string) (*netdef.Definition, error) {
	d, err := loadValid(s.livePath(name), name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return d, err
}

func loadValid(path, name string) (*netdef.Definition, error) {
	d, err := netdef.ParseFile(path)
	if err != nil {
		return nil, err
	}
	if err := Check(d); err != nil {
		return nil, err
	}
	if name != "" && d.Network.Name != name {
		return nil, fmt.Errorf("%s: <name> is %q, but the file is named for %q", path, d.Network.Name, name)
	}
	return d, nil
}

// Check validates a definition with libvirt's rules and this backend's
// own (FromDefinition's), naming the file, element and rule.
func Check(d *netdef.Definition) error {
	if probs := d.Validate(); len(probs) > 0 {
		errs := make([]error, len(probs))
		for i, p := range probs {
			errs[i] = p
		}
		return errors.Join(errs...)
	}
	if d.Network.Name == "" || strings.ContainsAny(d.Network.Name, "/\\") || strings.HasPrefix(d.Network.Name, ".") {
		return netdef.Problem{File: d.Path, Element: "network/name[0]", Line: d.Line("network/name[0]"), Rule: fmt.Sprintf("%q cannot name a file", d.Network.Name)}
	}
	_, err := FromDefinition(d, false)
	return err
}

// Write stores a definition as NAME.xml, byte for byte.
func (s Store) Write(d *netdef.Definition) error {
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return err
	}
	return state.WriteFileAtomic(s.defPath(d.Network.Name), d.Raw, 0o644)
}

// Remove deletes a definition and its autostart marker.
func (s Store) Remove(name string) error {
	err := os.Remove(s.defPath(name))
	if errors.Is(err, fs.ErrNotExist) {
		err = nil
	}
	aerr := os.Remove(s.autoPath(name))
	if errors.Is(aerr, fs.ErrNotExist) {
		aerr = nil
	}
	return errors.Join(err, aerr)
}

// WriteLive records the XML a network runs with.
func (s Store) WriteLive(name string, xml []byte) error {
	if err := state.EnsurePrivateDir(s.LiveDir); err != nil {
		return err
	}
	return state.WriteFileAtomic(s.livePath(name), xml, 0o600)
}

// RemoveLive forgets the live XML (the network stopped).
func (s Store) RemoveLive(name string) error {
	err := os.Remove(s.livePath(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// Autostart tells whether the network starts with NetworkManager.
func (s Store) Autostart(name string) bool {
	_, err := os.Stat(s.autoPath(name))
	return err == nil
}

// SetAutostart sets or clears the autostart marker.
func (s Store) SetAutostart(name string, on bool) error {
	if !on {
		err := os.Remove(s.autoPath(name))
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	if err := os.MkdirAll(filepath.Dir(s.autoPath(name)), 0o755); err != nil {
		return err
	}
	return os.WriteFile(s.autoPath(name), nil, 0o644)
}

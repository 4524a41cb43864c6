package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/pflag"

	"github.com/vnetguard/vnetguard/conflict"
	"github.com/vnetguard/vnetguard/netdef"
	"github.com/vnetguard/vnetguard/nmhook/guard"
	"github.com/vnetguard/vnetguard/nmhook/hostview"
)

// hostOptions choose where the host view comes from.
type hostOptions struct {
	stateFile string
}

func (o *hostOptions) register(fs *pflag.FlagSet) {
	fs.StringVar(&o.stateFile, "host-state", "", "read the host's addresses and routes from this JSON file (as 'vnetguard host-state' writes it) instead of the current network namespace")
}

// hostStateFormat documents the --host-state file for --help.
const hostStateFormat = `A host state file is one JSON object, as 'vnetguard host-state' writes it:
  {"addresses": [{"prefix": "192.168.1.20/24", "interface": "eth0", "scope": "global"}],
   "routes": [{"dst": "10.77.0.0/16", "interface": "wg0", "table": 51820,
               "type": "unicast", "scope": "link", "gateway": "10.0.0.1", "protocol": "static"}]}
An address is "prefix" (the address with its length, host bits kept),
"interface" and "scope" (global, site, link or host). A route is "dst" (a
prefix; host bits are masked), "interface", "table" (0 to 4294967295; 0 or
none means the main table, 254), "type" (unicast when empty, local,
broadcast, anycast, blackhole, unreachable, prohibit, throw, multicast,
nat), "scope", "gateway" (an address of the route's family) and "protocol"
(kernel, boot, static, dhcp, ...; shown only). Every key but "prefix" and
"dst" may be left out; unknown keys and trailing data are refused.`

// read returns the host view and whether it is the live host (so bridge
// ports can be looked up).
func (o *hostOptions) read() (conflict.HostView, bool, error) {
	if o.stateFile == "" {
		v, err := hostview.Read()
		if err != nil {
			return v, true, fmt.Errorf("read host addresses and routes: %w", err)
		}
		return v, true, nil
	}
	b, err := os.ReadFile(o.stateFile)
	if err != nil {
		return conflict.HostView{}, false, fmt.Errorf("--host-state: %w", err)
	}
	v, err := conflict.ParseHostState(b)
	if err != nil {
		return v, false, fmt.Errorf("--host-state %s: %w", o.stateFile, err)
	}
	return v, false, nil
}

// definitionFiles expands FILE|DIR arguments, the same way for every
// command: a file stands for itself, a directory for the *.xml files in it
// (not its subdirectories), in name order. A missing path, or a directory
// with no *.xml file, is an error; a file named twice counts once.
func definitionFiles(paths []string) ([]string, error) {
	var files []string
	seen := map[string]bool{}
	for _, p := range paths {
		more, err := expandPath(p)
		if err != nil {
			return nil, err
		}
		for _, f := range more {
			if c := filepath.Clean(f); !seen[c] {
				seen[c] = true
				files = append(files, f)
			}
		}
	}
	return files, nil
}

// expandPath expands one FILE|DIR argument (see definitionFiles).
func expandPath(p string) ([]string, error) {
	fi, err := os.Stat(p)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	if !fi.IsDir() {
		return []string{p}, nil
	}
	entries, err := os.ReadDir(p)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	var files []string
	for _, e := range entries { // ReadDir sorts by name
		if !strings.HasSuffix(e.Name(), ".xml") {
			continue
		}
		f := filepath.Join(p, e.Name())
		if fi, err := os.Stat(f); err == nil && fi.IsDir() {
			continue
		}
		files = append(files, f)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%s: a directory with no *.xml file", p)
	}
	return files, nil
}

// loadDefinitions parses and validates network files and directories (see
// definitionFiles). Invalid definitions are an error: nothing is checked or
// moved on a doubt.
func loadDefinitions(paths []string) ([]*netdef.Definition, error) {
	files, err := definitionFiles(paths)
	if err != nil {
		return nil, err
	}
	var defs []*netdef.Definition
	var problems []string
	for _, f := range files {
		d, err := netdef.ParseFile(f)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		for _, p := range d.Validate() {
			problems = append(problems, p.Error())
		}
		defs = append(defs, d)
	}
	if len(problems) > 0 {
		return nil, errors.New("invalid network definitions:\n  " + strings.Join(problems, "\n  "))
	}
	return defs, nil
}

// loadOneDefinition is loadDefinitions for a flag that names one network.
func loadOneDefinition(flag, path string) (*netdef.Definition, error) {
	defs, err := loadDefinitions([]string{path})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	if len(defs) != 1 {
		return nil, fmt.Errorf("%s %s: holds %d network definitions; name one file", flag, path, len(defs))
	}
	return defs[0], nil
}

// engineNetwork is the conflict engine's view of a definition; on the live
// host the bridge's ports are looked up so they don't count as clashes.
func engineNetwork(d *netdef.Definition, live bool) (conflict.Network, error) {
	n := conflict.Network{
		Name:    d.Network.Name,
		Bridge:  d.Network.BridgeName(),
		Subnets: d.Network.Subnets(),
		Shared:  guard.SharedOf(d),
	}
	if live && n.Bridge != "" {
		ports, err := hostview.BridgePorts(n.Bridge)
		if err != nil {
			return n, fmt.Errorf("list ports of bridge %s: %w", n.Bridge, err)
		}
		n.Ports = ports
	}
	return n, nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/pflag"

	"github.com/vnetguard/vnetguard/conflict"
	"github.com/vnetguard/vnetguard/netdef"
	"github.com/vnetguard/vnetguard/nmhook/hostview"
)

// hostOptions choose where the host view comes from.
type hostOptions struct {
	stateFile string
}

func (o *hostOptions) register(fs *pflag.FlagSet) {
	fs.StringVar(&o.stateFile, "host-state", "", "read the host's addresses and routes from this JSON file instead of the current network namespace")
}

// read returns the host view and whether it is the live host (so bridge
// ports can be looked up).
func (o *hostOptions) read() (conflict.HostView, bool, error) {
	if o.stateFile == "" {
		v, err := hostview.Read(nil)
		if err != nil {
			return v, true, fmt.Errorf("read host addresses and routes: %w", err)
		}
		return v, true, nil
	}
	b, err := os.ReadFile(o.stateFile)
	if err != nil {
		return conflict.HostView{}, false, err
	}
	v, err := conflict.ParseHostState(b)
	if err != nil {
		return v, false, fmt.Errorf("%s: %w", o.stateFile, err)
	}
	return v, false, nil
}

// loadDefinitions parses and validates network files; a directory stands
// for the *.xml files in it. Invalid definitions are an error: nothing is
// checked or moved on a doubt.
func loadDefinitions(paths []string) ([]*netdef.Definition, error) {
	var files []string
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !fi.IsDir() {
			files = append(files, p)
			continue
		}
		matches, err := filepath.Glob(filepath.Join(p, "*.xml"))
		if err != nil {
			return nil, err
		}
		sort.Strings(matches)
		files = append(files, matches...)
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

// engineNetwork is the conflict engine's view of a definition; on the live
// host the bridge's ports are looked up so they don't count as clashes.
func engineNetwork(d *netdef.Definition, live bool) (conflict.Network, error) {
	n := conflict.Network{
		Name:    d.Network.Name,
		Bridge:  d.Network.BridgeName(),
		Subnets: d.Network.Subnets(),
	}
	if live && n.Bridge != "" {
		ports, err := hostview.BridgePorts(nil, n.Bridge)
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

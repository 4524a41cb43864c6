package main

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/vnetguard/vnetguard/netdef"
)

// writeNetwork writes a minimal valid network definition named name into
// dir (as NAME.xml) with the given <ip> elements, and returns its path.
func writeNetwork(t *testing.T, dir, name, ips string) string {
	t.Helper()
	xml := fmt.Sprintf("<network>\n  <name>%s</name>\n  <bridge name='vb-%s'/>\n  %s\n</network>\n", name, name, ips)
	p := filepath.Join(dir, name+".xml")
	if err := os.WriteFile(p, []byte(xml), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// writeFile writes data to a new file in a temporary directory.
func writeFile(t *testing.T, name, data string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// parseDefinition returns the subnets of a network definition.
func parseDefinition(xml string) ([]netip.Prefix, error) {
	d, err := netdef.Parse([]byte(xml))
	if err != nil {
		return nil, err
	}
	if probs := d.Validate(); len(probs) > 0 {
		return nil, probs[0]
	}
	return d.Network.Subnets(), nil
}

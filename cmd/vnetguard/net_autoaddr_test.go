package main

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/vnetguard/vnetguard/netdef"
	"github.com/vnetguard/vnetguard/nmhook/backend/profiles"
)

func TestAutoAddrIPs(t *testing.T) {
	src := "<network autoaddr='yes'>\n  <name>a</name>\n  <forward mode='nat'/>\n  <bridge name='br0'/>\n</network>\n"
	d, err := netdef.Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if !needsAutoAddr(d) {
		t.Fatal("autoaddr='yes' without <ip> not recognised")
	}
	nd, err := withIPs(d, autoAddrIPs(netip.MustParsePrefix("192.168.7.0/24"), netip.MustParsePrefix("fd12:3456:789a:1::/64")))
	if err != nil {
		t.Fatal(err)
	}
	if needsAutoAddr(nd) {
		t.Fatal("still needs addresses")
	}
	if err := profiles.Check(nd); err != nil {
		t.Fatal(err)
	}
	got := nd.Network.Subnets()
	if len(got) != 2 || got[0].String() != "192.168.7.0/24" || got[1].String() != "fd12:3456:789a:1::/64" {
		t.Fatalf("subnets %v", got)
	}
	if !strings.HasPrefix(string(nd.Raw), strings.TrimSuffix(src, "</network>\n")) || !strings.Contains(string(nd.Raw), "range start='192.168.7.100' end='192.168.7.200'") {
		t.Fatalf("raw:\n%s", nd.Raw)
	}
	p, err := profiles.FromDefinition(nd, false)
	if err != nil || p.IPv4Method != "shared" || p.IPv6Method != "shared" {
		t.Fatalf("profile %+v %v", p, err)
	}
	// Only IPv4 (no IPv6 socket), and a small subnet.
	nd, err = withIPs(d, autoAddrIPs(netip.MustParsePrefix("10.0.0.0/28"), netip.Prefix{}))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(nd.Raw), "range start='10.0.0.8' end='10.0.0.14'") || len(nd.Network.IPs) != 1 {
		t.Fatalf("raw:\n%s", nd.Raw)
	}
}

func TestCheckDefinitionAutoAddr(t *testing.T) {
	d, err := netdef.Parse([]byte("<network autoaddr='yes'><name>a</name><forward mode='nat'/><bridge name='br0'/></network>"))
	if err != nil {
		t.Fatal(err)
	}
	if err := checkDefinition(d); err != nil {
		t.Fatalf("autoaddr nat network without <ip> refused: %v", err)
	}
	d, _ = netdef.Parse([]byte("<network><name>a</name><forward mode='nat'/><bridge name='br0'/></network>"))
	if err := checkDefinition(d); err == nil {
		t.Fatal("nat network without <ip> and without autoaddr accepted")
	}
}

package netdef

import (
	"net/netip"
	"os"
	"strings"
	"testing"
)

func mustParseFile(t testing.TB, path string) *Definition {
	t.Helper()
	d, err := ParseFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestParseRich(t *testing.T) {
	d := mustParseFile(t, "testdata/rich.xml")
	if probs := d.Validate(); len(probs) != 0 {
		t.Fatalf("rich.xml should be valid: %v", probs)
	}
	n := d.Network
	checks := []struct {
		what string
		ok   bool
	}{
		{"name", n.Name == "rich"},
		{"uuid", n.UUID == "3e3fce45-4f53-4fa7-bb32-11f34168b82b"},
		{"title entity", n.Title == "Rich & complete"},
		{"ipv6 attr", n.IPv6 == "yes" && n.TrustGuestRxFilters == "no"},
		{"metadata kept", strings.Contains(n.Metadata.Inner, `<app:team name="infra"/>`)},
		{"forward", n.Forward.Mode == "nat" && n.Forward.Dev == "eth0" && n.Forward.Interfaces[0].Dev == "eth0" && n.ForwardMode() == "nat"},
		{"nat", n.Forward.NAT.IPv6 == "yes" && n.Forward.NAT.Addresses[0].End == "203.0.113.20" && n.Forward.NAT.Ports[0].Start == "1024"},
		{"bridge", n.Bridge.Name == "virbr9" && n.Bridge.MACTableManager == "libvirt" && n.Bridge.Zone == "trusted" && n.BridgeName() == "virbr9"},
		{"mac mtu", n.MAC.Address == "52:54:00:0a:0b:0c" && n.MTU.Size == "9000"},
		{"domain", n.Domain.Name == "lab.example" && n.Domain.LocalOnly == "yes" && n.Domain.Register == "no"},
		{"dns", n.DNS.Enable == "yes" && len(n.DNS.Forwarders) == 2 && n.DNS.Forwarders[1].Domain == "corp.example" && n.DNS.TXTs[0].Value == "lab network"},
		{"dns hosts", len(n.DNS.Hosts) == 2 && len(n.DNS.Hosts[0].Hostnames) == 2 && n.DNS.Hosts[0].IP == "192.168.122.10"},
		{"srv", n.DNS.SRVs[0].Service == "ldap" && n.DNS.SRVs[0].Port == "389"},
		{"ip", len(n.IPs) == 2 && n.IPs[0].Netmask == "255.255.255.0" && n.IPs[0].LocalPtr == "yes" && n.IPs[0].TFTP.Root == "/srv/tftp"},
		{"dhcp range lease", n.IPs[0].DHCP.Ranges[0].Lease.Expiry == "1" && n.IPs[0].DHCP.Ranges[0].Lease.Unit == "hours"},
		{"dhcp host entity", n.IPs[0].DHCP.Hosts[0].IP == "192.168.122.10" && n.IPs[0].DHCP.Hosts[0].Lease.Unit == "minutes"},
		{"bootp", n.IPs[0].DHCP.Bootp.File == "pxelinux.0" && n.IPs[0].DHCP.Bootp.Server == "192.168.122.2"},
		{"dhcp6 host", n.IPs[1].DHCP.Hosts[0].ID == "0:3:0:1:0:16:3e:11:22:33"},
		{"routes", len(n.Routes) == 3 && n.Routes[2].Metric == "2" && n.Routes[0].Gateway == "192.168.122.2" && n.Routes[1].Netmask == "255.255.255.192"},
		{"portgroups", len(n.PortGroups) == 2 && n.PortGroups[0].Default == "yes" && n.PortGroups[1].Name == "sales"},
		{"virtualport", n.PortGroups[0].VirtualPort.Type == "802.1Qbh" && n.PortGroups[0].VirtualPort.Parameters.Attrs[0].Value == "eng"},
		{"bandwidth", n.PortGroups[0].Bandwidth.Inbound.Burst == "1024" && n.Bandwidth.Outbound.Peak == "8000"},
		{"port isolated", n.Port.Isolated == "yes"},
		{"dnsmasq options", n.Dnsmasq != nil && len(n.Dnsmasq.Options) == 2 && strings.HasPrefix(n.Dnsmasq.Options[0].Value, "dhcp-vendorclass")},
		{"policy decoded", len(n.Metadata.Policies) == 1 && n.Metadata.Policies[0].OnConflict == "renumber"},
		{"nothing unknown", len(n.Extra) == 0 && len(n.ExtraAttrs) == 1}, // xmlns:dnsmasq
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("%s not parsed as expected", c.what)
		}
	}
	if p, ok := d.Policy(); !ok || p != Renumber {
		t.Errorf("policy = %q %v", p, ok)
	}
	want := []netip.Prefix{netip.MustParsePrefix("192.168.122.0/24"), netip.MustParsePrefix("fd12:3456:789a:1::/64")}
	if got := n.Subnets(); len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("subnets %v", got)
	}
	for path, want := range map[string]int{
		"network": 3, "network/ip[1]/dhcp[0]/host[0]": 51, "network/route[1]": 55,
		"network/metadata[0]/urn:x-vnetguard:policy:1 policy[0]":                                                                     9,
		"network/http://libvirt.org/schemas/network/dnsmasq/1.0 options[0]/http://libvirt.org/schemas/network/dnsmasq/1.0 option[1]": 66,
		"network/ip[7]": 0,
	} {
		if got := d.Line(path); got != want {
			t.Errorf("line of %s = %d, want %d", path, got, want)
		}
	}
}

// The direct modes carry the parts rich.xml (a NAT network) cannot:
// vlans, the device pool, PCI addresses.
func TestParseDirectModes(t *testing.T) {
	ovs := mustParseFile(t, "testdata/ovs.xml").Network
	hd := mustParseFile(t, "testdata/hostdev.xml").Network
	mv := mustParseFile(t, "testdata/macvtap.xml").Network
	checks := []struct {
		what string
		ok   bool
	}{
		{"ovs mode", ovs.ForwardMode() == "bridge" && ovs.BridgeName() == "ovsbr0" && ovs.TrustGuestRxFilters == "yes"},
		{"ovs virtualport", ovs.VirtualPort.Type == "openvswitch" && ovs.VirtualPort.Parameters.Attrs[0].Name.Local == "interfaceid"},
		{"ovs vlan", ovs.VLAN.Trunk == "yes" && len(ovs.VLAN.Tags) == 2 && ovs.VLAN.Tags[0].ID == "42" && ovs.VLAN.Tags[0].NativeMode == "untagged"},
		{"ovs portgroups", len(ovs.PortGroups) == 2 && ovs.PortGroups[1].VLAN.Tags[1].NativeMode == "tagged" && ovs.PortGroups[1].TrustGuestRxFilters == "no" && ovs.PortGroups[1].VirtualPort.Parameters.Attrs[0].Value == "dmz"},
		{"ovs no subnets", len(ovs.Subnets()) == 0},
		{"hostdev", hd.Forward.Managed == "yes" && hd.Forward.Driver.Name == "vfio" && len(hd.Forward.Addresses) == 2 && hd.Forward.Addresses[1].Function == "0x3" && hd.Forward.Addresses[0].Bus == "0x04"},
		{"macvtap pool", mv.ForwardMode() == "vepa" && len(mv.Forward.Interfaces) == 2 && mv.Forward.Interfaces[1].Dev == "eth11"},
		{"802.1Qbg params", len(mv.VirtualPort.Parameters.Attrs) == 4},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("%s not parsed as expected", c.what)
		}
	}
	if p, ok := ovs.Policy(); p != Warn || !ok {
		t.Errorf("policy with the prefix declared on <network>: %q %v", p, ok)
	}
}

func TestParseFloorAndLiveAttributes(t *testing.T) {
	d, err := Parse([]byte(`<network connections='3'><name>l</name><forward mode='bridge'><interface dev='eth0' connections='2'/><pf dev='eth9' connections='1'/></forward>` +
		`<bandwidth><inbound average='1' floor='5'/></bandwidth></network>`))
	if err != nil {
		t.Fatal(err)
	}
	n := d.Network
	if n.Connections != "3" || n.Forward.Interfaces[0].Connections != "2" || n.Forward.PFs[0].Connections != "1" || n.Bandwidth.Inbound.Floor != "5" {
		t.Errorf("live attributes lost: %+v", n)
	}
	if n.ForwardMode() != "bridge" {
		t.Error(n.ForwardMode())
	}
	if (&Network{Forward: &Forward{}}).ForwardMode() != "nat" || (&Network{}).ForwardMode() != "" {
		t.Error("a <forward> without mode is nat, none is isolated")
	}
}

func TestParseKeepsUnknownElements(t *testing.T) {
	d, err := Parse([]byte(`<network future="1"><name>x</name><hologram mode="on"><beam/></hologram>` +
		`<ip address='10.0.0.1' prefix='24' shiny='yes'><dhcp><relay to='x'/></dhcp></ip></network>`))
	if err != nil {
		t.Fatal(err)
	}
	ip := d.Network.IPs[0]
	if len(ip.ExtraAttrs) != 1 || ip.ExtraAttrs[0].Value != "yes" || len(ip.DHCP.Extra) != 1 || ip.DHCP.Extra[0].XMLName.Local != "relay" {
		t.Fatalf("unknown nested parts lost: %+v", ip)
	}
	if len(d.Network.Extra) != 1 || d.Network.Extra[0].XMLName.Local != "hologram" || d.Network.Extra[0].Inner != "<beam/>" {
		t.Fatalf("unknown element lost: %+v", d.Network.Extra)
	}
	if len(d.Network.ExtraAttrs) != 1 || d.Network.ExtraAttrs[0].Value != "1" {
		t.Fatalf("unknown attribute lost: %+v", d.Network.ExtraAttrs)
	}
}

func TestParseErrors(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`<network><name>x</name>`, "malformed"},
		{`<domain><name>x</name></domain>`, "root element is <domain>"},
		{``, "no <network>"},
		{"<network>\n<name>x</name>\n<ip address='1.2.3.4'></dhcp></network>", "line 3"},
		{`<network/><network/>`, "more than one root"},
		{"<network>\n<name a='1' a='2'>x</name></network>", "line 2: malformed XML: attribute a repeated"},
		{`<network xmlns="urn:other"><name>x</name></network>`, "want <network>"},
	} {
		_, err := Parse([]byte(c.in))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Parse(%q) = %v, want error containing %q", c.in, err, c.want)
		}
	}
	if _, err := ParseFile("testdata/none.xml"); err == nil {
		t.Error("missing file accepted")
	}
	f := t.TempDir() + "/bad.xml"
	os.WriteFile(f, []byte("<network>"), 0o644)
	if _, err := ParseFile(f); err == nil || !strings.HasPrefix(err.Error(), f) {
		t.Errorf("error does not start with the file: %v", err)
	}
}

func TestPolicy(t *testing.T) {
	cases := []struct {
		xml  string
		want OnConflict
		ok   bool
	}{
		{`<network><name>a</name></network>`, "", false},
		{`<network autoaddr='yes'><name>a</name></network>`, Renumber, true},
		{`<network autoaddr='no'><name>a</name></network>`, "", false},
		{`<network><name>a</name><metadata><p:policy xmlns:p="urn:x-vnetguard:policy:1" on-conflict="warn"/></metadata></network>`, Warn, true},
		{`<network xmlns:vg="urn:x-vnetguard:policy:1"><name>a</name><metadata><vg:policy on-conflict="destroy"/></metadata></network>`, Destroy, true},
		{`<network><name>a</name><metadata><policy on-conflict="warn"/></metadata></network>`, "", false}, // not our namespace
		{`<network autoaddr='yes'><name>a</name><metadata><p:policy xmlns:p="urn:x-vnetguard:policy:1" on-conflict="warn"/></metadata></network>`, Warn, true},
		// a broken policy is not read as consent to renumber
		{`<network autoaddr='yes'><name>a</name><metadata><p:policy xmlns:p="urn:x-vnetguard:policy:1" on-conflict="renumbr"/></metadata></network>`, "renumbr", false},
		{`<network><name>a</name><metadata><x:policy xmlns:x="urn:x-vnetguard:policy:2" on-conflict="warn"/></metadata></network>`, "", false},
	}
	for _, c := range cases {
		d, err := Parse([]byte(c.xml))
		if err != nil {
			t.Fatal(err)
		}
		if p, ok := d.Network.Policy(); p != c.want || ok != c.ok {
			t.Errorf("%s: got %q %v, want %q %v", c.xml, p, ok, c.want, c.ok)
		}
		if p, ok := d.Policy(); p != c.want || ok != c.ok {
			t.Errorf("Definition.Policy differs from Network.Policy: %q %v", p, ok)
		}
	}
}

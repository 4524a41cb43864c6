package profiles

import (
	"net/netip"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/vnetguard/vnetguard/netdef"
)

func parse(t *testing.T, xml string) *netdef.Definition {
	t.Helper()
	d, err := netdef.Parse([]byte(xml))
	if err != nil {
		t.Fatal(err)
	}
	d.Path = "n.xml"
	return d
}

func TestFromDefinition(t *testing.T) {
	pp := netip.MustParsePrefix
	tests := []struct {
		name, xml string
		want      Profile
	}{{
		name: "nat dual stack with DHCP",
		xml: `<network><name>lab</name><forward mode='nat'/><bridge name='br9' stp='off' delay='0'/>
<ip address='10.1.2.1' prefix='24'><dhcp><range start='10.1.2.100' end='10.1.2.200'/></dhcp></ip>
<ip family='ipv6' address='fd00:1::1' prefix='64'/></network>`,
		want: Profile{Network: "lab", ID: "vnetguard-lab", UUID: NameUUID("lab"), Iface: "br9",
			STP: false, ForwardDelay: 0, IPv4Method: "shared", IPv4: []netip.Prefix{pp("10.1.2.1/24")},
			IPv6Method: "shared", IPv6: []netip.Prefix{pp("fd00:1::1/64")}, DHCP: "shared", RA: "networkmanager",
			Notes: []string{"NetworkManager 1.42 has no shared-dhcp-range: it leases 10.1.2.10-10.1.2.254"}, Zone: "nm-shared"},
	}, {
		name: "isolated IPv4 without DHCP, no IPv6, uuid and mtu given",
		xml: `<network><name>iso</name><uuid>0b5a3a8c-2f9c-4d5e-9b1f-3c2d1e0f9a8b</uuid><bridge name='br8' delay='5'/><mtu size='9000'/>
<ip address='10.1.3.1' netmask='255.255.255.0'/></network>`,
		want: Profile{Network: "iso", ID: "vnetguard-iso", UUID: "0b5a3a8c-2f9c-4d5e-9b1f-3c2d1e0f9a8b", Iface: "br8",
			STP: true, ForwardDelay: 5, MTU: 9000, IPv4Method: "manual", IPv4: []netip.Prefix{pp("10.1.3.1/24")},
			IPv6Method: "disabled", DHCP: "none", Zone: "nm-shared"},
	}, {
		name: "DHCP address first",
		xml: `<network><name>two</name><bridge name='br7'/><ip address='10.1.4.1' prefix='24'/>
<ip address='10.1.5.1' prefix='24'><dhcp/></ip></network>`,
		want: Profile{Network: "two", ID: "vnetguard-two", UUID: NameUUID("two"), Iface: "br7", STP: true, ForwardDelay: -1,
			IPv4Method: "shared", IPv4: []netip.Prefix{pp("10.1.5.1/24"), pp("10.1.4.1/24")}, IPv6Method: "disabled", DHCP: "shared", Zone: "nm-shared"},
	}, {
		name: "DHCP hosts and DHCPv6: vnetguard's dnsmasq, which also sends the RAs",
		xml: `<network><name>own</name><forward mode='nat'/><bridge name='br6' stp='off'/>
<ip address='10.1.6.1' prefix='24'><dhcp><range start='10.1.6.100' end='10.1.6.199'/><host mac='52:54:00:00:00:01' ip='10.1.6.5'/></dhcp></ip>
<ip family='ipv6' address='fd00:6::1' prefix='64'><dhcp><range start='fd00:6::100' end='fd00:6::1ff'/></dhcp></ip></network>`,
		want: Profile{Network: "own", ID: "vnetguard-own", UUID: NameUUID("own"), Iface: "br6", ForwardDelay: -1,
			IPv4Method: "manual", IPv4: []netip.Prefix{pp("10.1.6.1/24")}, IPv6Method: "manual", IPv6: []netip.Prefix{pp("fd00:6::1/64")},
			DHCP: "dnsmasq", RA: "dnsmasq", Notes: []string{"DHCP and DNS from vnetguard's own dnsmasq: DHCP hosts, DHCPv6"}, Zone: "nm-shared"},
	}, {
		name: "routed DHCPv4: vnetguard's dnsmasq, NetworkManager's RAs",
		xml: `<network><name>rt</name><forward mode='route'/><bridge name='br5'/>
<ip address='10.1.7.1' prefix='24'><dhcp><range start='10.1.7.100' end='10.1.7.199'/></dhcp></ip>
<ip family='ipv6' address='fd00:7::1' prefix='64'/></network>`,
		want: Profile{Network: "rt", ID: "vnetguard-rt", UUID: NameUUID("rt"), Iface: "br5", STP: true, ForwardDelay: -1,
			IPv4Method: "manual", IPv4: []netip.Prefix{pp("10.1.7.1/24")}, IPv6Method: "shared", IPv6: []netip.Prefix{pp("fd00:7::1/64")},
			DHCP: "dnsmasq", RA: "networkmanager", Notes: []string{"DHCP and DNS from vnetguard's own dnsmasq: a routed network's DHCP (shared mode would block connections from outside)"}, Zone: "nm-shared"},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := FromDefinition(parse(t, tc.xml), false)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestFromDefinitionRefuses(t *testing.T) {
	tests := []struct{ xml, want string }{
		{`<network><name>a</name><ip address='10.0.0.1' prefix='24'/></network>`, "n.xml: <network> (line 1): vnetguard's own networks need <bridge"},
		{`<network><name>a</name><forward mode='private'/><bridge name='b'/></network>`, "forward mode \"private\""},
		{`<network><name>a</name><bridge name='b'/><dns><txt name='x' value='y'/></dns></network>`, "<txt> (line 1): DNS TXT records are not supported"},
		{`<network><name>a</name><bridge name='b'/><ip family='ipv6' address='fd00::1' prefix='64'><radvd/><dhcp><range start='fd00::10' end='fd00::20'/></dhcp></ip></network>`, "<radvd/> and DHCPv6 on one network"},
		{`<network><name>a</name><bridge name='b'/><ip family='ipv6' address='fd00::1' prefix='56'/></network>`, "need a /64"},
	}
	for _, tc := range tests {
		_, err := FromDefinition(parse(t, tc.xml), false)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s:\n got %v\nwant %q", tc.xml, err, tc.want)
		}
	}
}

// The D-Bus encoding says what the lab test checks NetworkManager makes of it.
func TestSettings(t *testing.T) {
	p, err := FromDefinition(parse(t, `<network><name>lab</name><bridge name='br9'/>
<ip address='10.1.2.1' prefix='24'><dhcp/></ip></network>`), true)
	if err != nil {
		t.Fatal(err)
	}
	s := p.Settings()
	if OwnerOf(s) != "lab" {
		t.Fatalf("owner %q", OwnerOf(s))
	}
	if got := AddressesOf(s); !reflect.DeepEqual(got, []netip.Prefix{netip.MustParsePrefix("10.1.2.1/24")}) {
		t.Fatalf("addresses %v", got)
	}
	for k, want := range map[string]any{"connection.type": "bridge", "connection.interface-name": "br9",
		"connection.autoconnect": true, "ipv4.method": "shared", "ipv6.method": "disabled", "bridge.stp": true} {
		sec, key, _ := strings.Cut(k, ".")
		if got := s[sec][key].Value(); got != want {
			t.Errorf("%s = %v, want %v", k, got, want)
		}
	}
	// A reapply keeps the applied settings but the addresses, and drops
	// the deprecated forms godbus cannot send back.
	applied := p.Settings()
	applied["ipv4"]["addresses"] = s["ipv4"]["method"]
	applied["ipv4"]["dns"] = s["ipv4"]["method"]
	q := p
	q.IPv4 = []netip.Prefix{netip.MustParsePrefix("10.9.9.1/24")}
	r := WithAddresses(applied, q)
	if _, ok := r["ipv4"]["addresses"]; ok {
		t.Error("deprecated ipv4.addresses kept")
	}
	if _, ok := r["ipv4"]["dns"]; !ok {
		t.Error("ipv4.dns dropped")
	}
	if got := AddressesOf(r); !reflect.DeepEqual(got, q.IPv4) {
		t.Errorf("reapplied addresses %v", got)
	}
}

func TestNameUUIDAndRange(t *testing.T) {
	u := NameUUID("default")
	if len(u) != 36 || u[14] != '5' || u != NameUUID("default") || u == NameUUID("other") {
		t.Fatalf("NameUUID: %s", u)
	}
	for p, want := range map[string]string{"10.0.0.1/24": "10.0.0.10-10.0.0.254", "10.0.0.1/16": "10.0.0.10-10.0.255.254", "10.0.0.1/29": "10.0.0.1-10.0.0.6"} {
		if got := SharedRange(netip.MustParsePrefix(p)); got != want {
			t.Errorf("SharedRange(%s) = %s, want %s", p, got, want)
		}
	}
}

func TestForwardingSysctls(t *testing.T) {
	tests := []struct {
		xml  string
		want []string
	}{
		{`<network><name>a</name><forward mode='route'/><bridge name='b'/><ip address='10.0.0.1' prefix='24'/></network>`, []string{"net/ipv4/ip_forward"}},
		{`<network><name>a</name><forward mode='nat'/><bridge name='b'/><ip address='10.0.0.1' prefix='24'/><ip family='ipv6' address='fd00::1' prefix='64'/></network>`,
			[]string{"net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding"}},
		{`<network><name>a</name><bridge name='b'/><ip address='10.0.0.1' prefix='24'/></network>`, nil},
	}
	for _, tc := range tests {
		if got := ForwardingSysctls(parse(t, tc.xml)); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.xml, got, tc.want)
		}
	}
	dir := t.TempDir()
	for _, k := range []string{"net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding"} {
		p := dir + "/" + k
		if err := os.MkdirAll(p[:strings.LastIndex(p, "/")], 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(p, []byte("0\n"), 0o644)
	}
	if err := EnsureForwarding(parse(t, tests[0].xml), dir); err != nil {
		t.Fatal(err)
	}
	if v, _ := os.ReadFile(dir + "/net/ipv4/ip_forward"); string(v) != "1\n" {
		t.Errorf("ip_forward %q", v)
	}
	if v, _ := os.ReadFile(dir + "/net/ipv6/conf/all/forwarding"); string(v) != "0\n" {
		t.Errorf("IPv6 forwarding touched for an IPv4 network: %q", v)
	}
}

func TestFromDefinitionBridged(t *testing.T) {
	p, err := FromDefinition(parse(t, `<network><name>lan</name><forward mode='bridge'><interface dev='enp3s0'/></forward></network>`), true)
	if err != nil {
		t.Fatal(err)
	}
	want := Profile{Network: "lan", ID: "vnetguard-lan", UUID: NameUUID("lan"), Iface: "brenp3s0", Autoconnect: true,
		IPv4Method: "auto", IPv6Method: "auto", DHCP: "upstream", Uplink: "enp3s0"}
	if !reflect.DeepEqual(p, want) {
		t.Fatalf("got  %+v\nwant %+v", p, want)
	}
	port := p.PortSettings()
	if port["connection"]["master"].Value() != "brenp3s0" || port["connection"]["slave-type"].Value() != "bridge" ||
		port["connection"]["interface-name"].Value() != "enp3s0" || OwnerOf(port) != "lan/port" {
		t.Fatalf("port settings %v", port)
	}
	if _, ok := port["ipv4"]; ok {
		t.Fatal("a port profile has IP settings")
	}
	if BridgedName("averyveryverylongname") != "braveryveryvery" {
		t.Fatalf("BridgedName not cut to 15: %q", BridgedName("averyveryverylongname"))
	}
	if _, err := FromDefinition(parse(t, `<network><name>lan</name><forward mode='bridge'/></network>`), false); err == nil ||
		!strings.Contains(err.Error(), "uplink") {
		t.Fatalf("bridged without an uplink: %v", err)
	}
}

func TestRadvd(t *testing.T) {
	d := parse(t, `<network><name>r</name><forward mode='route'/><bridge name='br5'/>
<ip family='ipv6' address='2001:db8:1::1' prefix='64'><radvd/></ip><ip address='10.0.0.1' prefix='24'/></network>`)
	p, err := FromDefinition(d, false)
	if err != nil {
		t.Fatal(err)
	}
	if p.IPv6Method != "manual" || p.RA != "radvd" {
		t.Fatalf("profile %+v", p)
	}
	want := "# written by vnetguard for network r; rewritten on every change\ninterface br5 {\n\tAdvSendAdvert on;\n\tMinRtrAdvInterval 3;\n\tMaxRtrAdvInterval 10;\n\tprefix 2001:db8:1::/64 {\n\t\tAdvOnLink on;\n\t\tAdvAutonomous on;\n\t};\n};\n"
	if got := string(RadvdConfig(d)); got != want {
		t.Fatalf("config:\n%s\nwant\n%s", got, want)
	}
	iso := parse(t, `<network><name>i</name><bridge name='br6'/><ip family='ipv6' address='fd00::1' prefix='64'><radvd/></ip></network>`)
	if !strings.Contains(string(RadvdConfig(iso)), "AdvDefaultLifetime 0;") {
		t.Fatalf("an isolated network advertises a default route:\n%s", RadvdConfig(iso))
	}
	if RadvdConfig(parse(t, `<network><name>n</name><bridge name='br6'/><ip family='ipv6' address='fd00::1' prefix='64'/></network>`)) != nil {
		t.Fatal("radvd config without <radvd/>")
	}
}

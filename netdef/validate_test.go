package netdef

import (
	"fmt"
	"strings"
	"testing"
)

// base is a valid network; each case swaps in one broken part.
const base = `<network>
  <name>%NAME%</name>
  %TOP%
  <forward mode='%MODE%'/>
  <bridge name='virbr5'/>
  <ip address='192.168.50.1' %MASK%>
    <dhcp>
      %DHCP%
    </dhcp>
  </ip>
  %MORE%
</network>`

func build(repl map[string]string) string {
	defaults := map[string]string{
		"%NAME%": "ok", "%TOP%": "", "%MODE%": "nat", "%MASK%": "prefix='24'",
		"%DHCP%": "<range start='192.168.50.10' end='192.168.50.20'/>", "%MORE%": "",
	}
	s := base
	for k, v := range defaults {
		if r, ok := repl[k]; ok {
			v = r
		}
		s = strings.ReplaceAll(s, k, v)
	}
	return s
}

func TestValidateAcceptsValid(t *testing.T) {
	for _, f := range []string{"testdata/default.xml", "testdata/rich.xml", "testdata/ovs.xml", "testdata/hostdev.xml", "testdata/macvtap.xml"} {
		if probs := mustParseFile(t, f).Validate(); len(probs) != 0 {
			t.Errorf("%s: %v", f, probs)
		}
	}
	valid := []map[string]string{
		{},
		{"%MASK%": "netmask='255.255.255.0'"},
		{"%MASK%": ""}, // classful default /24 for 192.168
		{"%MASK%": "netmask='255.255.255.0' prefix='0'"}, // libvirt reads prefix 0 as absent
		{"%MODE%": "route"},
		{"%MODE%": "open"},
		{"%MORE%": "<ip family='ipv6' address='fd00:1::1' prefix='64'><dhcp><range start='fd00:1::10' end='fd00:1::ff'/><host id='0:1:2' ip='fd00:1::5'/></dhcp></ip>"},
		{"%MORE%": "<route address='10.9.0.0' prefix='16' gateway='192.168.50.2'/><route address='0.0.0.0' gateway='192.168.50.3'/>"},
		{"%DHCP%": "<host mac='52:54:00:00:00:01' ip='192.168.50.5'/><host name='n' ip='192.168.50.6'/><bootp file='pxe' server='192.168.50.2'/>"},
		{"%DHCP%": "<range start='192.168.50.10' end='192.168.50.20'><lease expiry='0'/></range><host name='x' ip='192.168.50.7'><lease expiry='120' unit='seconds'/></host>"},
		{"%TOP%": "<metadata><v:policy xmlns:v='urn:x-vnetguard:policy:1' on-conflict='warn'/></metadata>"},
		{"%MORE%": "<ip address='10.1.0.1' prefix='24'><dhcp/></ip>"}, // a bare <dhcp/> serves nothing
		{"%MORE%": "<dns><srv service='x' protocol='sctp'/><txt name='a' value='b c'/></dns>"},
		{"%MORE%": "<ip family='ipv6' address='fd00:1::1'><dhcp><bootp file='ignored'/></dhcp></ip>"}, // libvirt ignores bootp on IPv6
		{"%MODE%": "nat'><nat><address start='203.0.113.1' end='203.0.113.1'/><port start='0' end='0'/></nat></forward><x a='"},
	}
	for i, r := range valid {
		d, err := Parse([]byte(build(r)))
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		if probs := d.Validate(); len(probs) != 0 {
			t.Errorf("valid case %d (%v) rejected: %v", i, r, probs)
		}
	}
}

type ruleCase struct {
	name    string
	repl    map[string]string // edits of base, or
	xml     string            // a whole definition
	element string
	rule    string
}

func TestValidateRules(t *testing.T) {
	const ovsHead = `<network><name>o</name><forward mode='bridge'/><bridge name='br0'/><virtualport type='openvswitch'/>`
	cases := []ruleCase{
		// naming and identity
		{name: "no name", repl: map[string]string{"%NAME%": ""}, element: "network", rule: "needs a <name>"},
		{name: "slash in name", repl: map[string]string{"%NAME%": "a/b"}, element: "name", rule: "must not contain '/'"},
		{name: "bad uuid", repl: map[string]string{"%TOP%": "<uuid>xyz</uuid>"}, element: "uuid", rule: "not a UUID"},
		{name: "short uuid", repl: map[string]string{"%TOP%": "<uuid>3e3fce45-4f53-4fa7-bb32-11f34168b82</uuid>"}, element: "uuid", rule: "not a UUID"},
		{name: "title newline", repl: map[string]string{"%TOP%": "<title>a\nb</title>"}, element: "title", rule: "newlines"},
		{name: "ipv6 attr", xml: `<network ipv6='true'><name>x</name></network>`, element: "network", rule: `ipv6="true" must be yes or no`},
		// <ip>
		{name: "ip without address", repl: map[string]string{"%MORE%": "<ip prefix='24'/>"}, element: "ip", rule: "needs an address"},
		{name: "family mismatch", repl: map[string]string{"%MORE%": "<ip family='ipv6' address='10.0.0.1' prefix='8'/>"}, element: "ip", rule: "does not belong to family"},
		{name: "ipv6 without family", repl: map[string]string{"%MORE%": "<ip address='fd00::1' prefix='64'/>"}, element: "ip", rule: "does not belong to family \"ipv4\""},
		{name: "unknown family", repl: map[string]string{"%MORE%": "<ip family='ipx' address='10.0.0.1'/>"}, element: "ip", rule: "must be ipv4 or ipv6"},
		{name: "netmask and prefix", repl: map[string]string{"%MASK%": "netmask='255.255.255.0' prefix='24'"}, element: "ip", rule: "netmask and prefix must not be given together"},
		{name: "ipv6 netmask", repl: map[string]string{"%MORE%": "<ip family='ipv6' address='fd00::1' netmask='255.255.255.0'/>"}, element: "ip", rule: "takes a prefix, not a netmask"},
		{name: "prefix too long v4", repl: map[string]string{"%MASK%": "prefix='33'"}, element: "ip", rule: "from 0 to 32"},
		{name: "prefix too long v6", repl: map[string]string{"%MORE%": "<ip family='ipv6' address='fd00::1' prefix='129'/>"}, element: "ip", rule: "from 0 to 128"},
		{name: "netmask not contiguous", repl: map[string]string{"%MASK%": "netmask='255.0.255.0'"}, element: "ip", rule: "not contiguous"},
		{name: "class D default", repl: map[string]string{"%MORE%": "<ip address='224.0.0.1'/>"}, element: "ip", rule: "no default prefix"},
		{name: "localPtr", repl: map[string]string{"%MASK%": "prefix='24' localPtr='on'"}, element: "ip", rule: "must be yes or no"},
		{name: "tftp on ipv6", repl: map[string]string{"%MORE%": "<ip family='ipv6' address='fd00::1'><tftp root='/t'/></ip>"}, element: "tftp", rule: "only supported on IPv4"},
		{name: "two ipv4 dhcp", repl: map[string]string{"%MORE%": "<ip address='10.1.0.1' prefix='24'><dhcp><range start='10.1.0.5' end='10.1.0.6'/></dhcp></ip>"}, element: "dhcp", rule: "only one IPv4 <ip> may have <dhcp>"},
		{name: "two ipv6 dhcp", repl: map[string]string{"%MORE%": "<ip family='ipv6' address='fd00:1::1'><dhcp><host id='1' ip='fd00:1::2'/></dhcp></ip><ip family='ipv6' address='fd00:2::1'><dhcp><host id='1' ip='fd00:2::2'/></dhcp></ip>"}, element: "dhcp", rule: "only one IPv6 <ip> may have <dhcp>"},
		// DHCP ranges
		{name: "range outside", repl: map[string]string{"%DHCP%": "<range start='192.168.51.10' end='192.168.51.20'/>"}, element: "range", rule: "outside the network's subnet"},
		{name: "range network address", repl: map[string]string{"%DHCP%": "<range start='192.168.50.0' end='192.168.50.20'/>"}, element: "range", rule: "network address"},
		{name: "range broadcast", repl: map[string]string{"%DHCP%": "<range start='192.168.50.10' end='192.168.50.255'/>"}, element: "range", rule: "broadcast address"},
		{name: "range reversed", repl: map[string]string{"%DHCP%": "<range start='192.168.50.30' end='192.168.50.20'/>"}, element: "range", rule: "is after end"},
		{name: "range too large", repl: map[string]string{"%MASK%": "prefix='8'", "%DHCP%": "<range start='192.168.0.1' end='192.169.0.1'/>"}, element: "range", rule: "65535 addresses at most"},
		{name: "v6 range too large", repl: map[string]string{"%MORE%": "<ip family='ipv6' address='fd00::1'><dhcp><range start='fd00::1:0' end='fd00::2:0'/></dhcp></ip>"}, element: "range", rule: "65535 addresses at most"},
		{name: "range missing end", repl: map[string]string{"%DHCP%": "<range start='192.168.50.30'/>"}, element: "range", rule: "needs start and end"},
		{name: "lease unit", repl: map[string]string{"%DHCP%": "<range start='192.168.50.10' end='192.168.50.20'><lease expiry='5' unit='days'/></range>"}, element: "lease", rule: "seconds, minutes or hours"},
		{name: "lease too short", repl: map[string]string{"%DHCP%": "<range start='192.168.50.10' end='192.168.50.20'><lease expiry='90' unit='seconds'/></range>"}, element: "lease", rule: "shorter than 2 minutes"},
		{name: "lease default unit minutes", repl: map[string]string{"%DHCP%": "<range start='192.168.50.10' end='192.168.50.20'><lease expiry='1'/></range>"}, element: "lease", rule: "shorter than 2 minutes"},
		// DHCP hosts
		{name: "host outside", repl: map[string]string{"%DHCP%": "<host mac='52:54:00:00:00:01' ip='10.0.0.5'/>"}, element: "host", rule: "outside the network's subnet"},
		{name: "host broadcast", repl: map[string]string{"%DHCP%": "<host mac='52:54:00:00:00:01' ip='192.168.50.255'/>"}, element: "host", rule: "network or broadcast"},
		{name: "host without mac or name", repl: map[string]string{"%DHCP%": "<host ip='192.168.50.5'/>"}, element: "host", rule: "needs a mac or a name"},
		{name: "host without ip", repl: map[string]string{"%DHCP%": "<host mac='52:54:00:00:00:01'/>"}, element: "host", rule: "needs an ip"},
		{name: "host multicast mac", repl: map[string]string{"%DHCP%": "<host mac='01:00:5e:00:00:01' ip='192.168.50.5'/>"}, element: "host", rule: "unicast MAC"},
		{name: "host name start", repl: map[string]string{"%DHCP%": "<host name='-x' ip='192.168.50.5'/>"}, element: "host", rule: "must start with a letter or digit"},
		{name: "v6 host with mac", repl: map[string]string{"%MORE%": "<ip family='ipv6' address='fd00:1::1' prefix='64'><dhcp><host mac='52:54:00:00:00:01' ip='fd00:1::5'/></dhcp></ip>"}, element: "host", rule: "not mac"},
		{name: "v6 host without id", repl: map[string]string{"%MORE%": "<ip family='ipv6' address='fd00:1::1'><dhcp><host ip='fd00:1::5'/></dhcp></ip>"}, element: "host", rule: "needs an id or a name"},
		{name: "v6 host id chars", repl: map[string]string{"%MORE%": "<ip family='ipv6' address='fd00:1::1'><dhcp><host id='0:1:zz' ip='fd00:1::5'/></dhcp></ip>"}, element: "host", rule: "only hex digits"},
		{name: "bootp without file", repl: map[string]string{"%DHCP%": "<bootp server='192.168.50.2'/>"}, element: "bootp", rule: "needs a file"},
		{name: "bootp server name", repl: map[string]string{"%DHCP%": "<bootp file='x' server='tftp.example'/>"}, element: "bootp", rule: "not an IP address"},
		// forward
		{name: "nat without nat mode", repl: map[string]string{"%MODE%": "route' dev='x'><nat/></forward><x a='"}, element: "nat", rule: "only allowed with forward mode nat"},
		{name: "open with dev", repl: map[string]string{"%MODE%": "open' dev='eth0"}, element: "forward", rule: "open takes no dev"},
		{name: "unknown mode", repl: map[string]string{"%MODE%": "teleport"}, element: "forward", rule: "unknown forward mode"},
		{name: "forward without mode needs ip", xml: `<network><name>x</name><forward/></network>`, element: "network", rule: "forward mode nat needs an <ip>"},
		{name: "nat ipv6 range", repl: map[string]string{"%MODE%": "nat'><nat><address start='fd00::1' end='fd00::2'/></nat></forward><x a='"}, element: "address", rule: "needs IPv4 start and end"},
		{name: "nat range reversed", repl: map[string]string{"%MODE%": "nat'><nat><address start='203.0.113.9' end='203.0.113.1'/></nat></forward><x a='"}, element: "address", rule: "is after end"},
		{name: "nat two addresses", repl: map[string]string{"%MODE%": "nat'><nat><address start='203.0.113.1' end='203.0.113.1'/><address start='203.0.113.2' end='203.0.113.2'/></nat></forward><x a='"}, element: "address", rule: "only one <address>"},
		{name: "nat ports", repl: map[string]string{"%MODE%": "nat'><nat><port start='2000' end='1000'/></nat></forward><x a='"}, element: "port", rule: "start <= end"},
		{name: "nat port too big", repl: map[string]string{"%MODE%": "nat'><nat><port start='1' end='70000'/></nat></forward><x a='"}, element: "port", rule: "0-65535"},
		{name: "nat two interfaces", repl: map[string]string{"%MODE%": "nat'><interface dev='a'/><interface dev='b'/></forward><x a='"}, element: "forward", rule: "only one forwarding interface"},
		{name: "dev and interface differ", repl: map[string]string{"%MODE%": "nat' dev='a'><interface dev='b'/></forward><x a='"}, element: "interface", rule: "must match the first"},
		{name: "interface twice", xml: `<network><name>x</name><forward mode='vepa'><interface dev='a'/><interface dev='a'/></forward></network>`, element: "interface", rule: "listed twice"},
		{name: "interface without dev", xml: `<network><name>x</name><forward mode='vepa'><interface/></forward></network>`, element: "interface", rule: "needs a dev"},
		{name: "driver name", xml: `<network><name>x</name><forward mode='hostdev'><driver name='xen'/><address type='pci' domain='0' bus='1' slot='0' function='1'/></forward></network>`, element: "driver", rule: "kvm or vfio"},
		{name: "hostdev by name", xml: `<network><name>x</name><forward mode='hostdev'><interface dev='eth0'/></forward></network>`, element: "interface", rule: "by PCI <address>"},
		{name: "pci outside hostdev", xml: `<network><name>x</name><forward mode='passthrough'><address type='pci' domain='0' bus='1' slot='0' function='1'/></forward></network>`, element: "address", rule: "needs forward mode hostdev"},
		{name: "usb address", xml: `<network><name>x</name><forward mode='hostdev'><address type='usb' bus='1'/></forward></network>`, element: "address", rule: "only pci"},
		{name: "pci twice", xml: `<network><name>x</name><forward mode='hostdev'><address type='pci' bus='1'/><address type='pci' bus='1'/></forward></network>`, element: "address", rule: "listed twice"},
		{name: "two pfs", xml: `<network><name>x</name><forward mode='passthrough'><pf dev='a'/><pf dev='b'/></forward></network>`, element: "pf", rule: "only one <pf>"},
		{name: "dev with pf", xml: `<network><name>x</name><forward mode='passthrough' dev='a'><pf dev='b'/></forward></network>`, element: "forward", rule: "cannot be used together"},
		{name: "pf and interface", xml: `<network><name>x</name><forward mode='passthrough'><pf dev='b'/><interface dev='c'/></forward></network>`, element: "forward", rule: "mutually exclusive"},
		// modes without addressing
		{name: "bridge mode with ip", repl: map[string]string{"%MODE%": "bridge"}, element: "ip", rule: "not allowed with forward mode"},
		{name: "vepa with bridge name", xml: `<network><name>x</name><forward mode='vepa' dev='eth0'/><bridge name='br0'/></network>`, element: "bridge", rule: "bridge name is not allowed"},
		{name: "bridge mode with stp", xml: `<network><name>x</name><forward mode='bridge'/><bridge name='br0' stp='on'/></network>`, element: "bridge", rule: "stp and zone are only allowed"},
		{name: "bridge name and dev", xml: `<network><name>x</name><forward mode='bridge' dev='eth0'/><bridge name='br0'/></network>`, element: "bridge", rule: "not both"},
		{name: "bridge mode with mac", xml: `<network><name>x</name><forward mode='bridge'/><bridge name='br0'/><mac address='52:54:00:00:00:01'/></network>`, element: "mac", rule: "not allowed with forward mode bridge"},
		{name: "bridge mode with dns host", xml: `<network><name>x</name><forward mode='bridge'/><bridge name='br0'/><dns><host ip='10.0.0.1'><hostname>a</hostname></host></dns></network>`, element: "dns", rule: "records are not allowed"},
		{name: "bridge mode with domain", xml: `<network><name>x</name><forward mode='bridge'/><bridge name='br0'/><domain name='x.example'/></network>`, element: "domain", rule: "not allowed with forward mode"},
		{name: "bridge mode with mtu", xml: `<network><name>x</name><forward mode='bridge'/><bridge name='br0'/><mtu size='1500'/></network>`, element: "mtu", rule: "mtu is only allowed"},
		{name: "macvtap bandwidth", xml: `<network><name>x</name><forward mode='bridge' dev='eth0'/><bandwidth><inbound average='1'/></bandwidth></network>`, element: "bandwidth", rule: "not allowed with forward mode bridge"},
		{name: "hostdev portgroup bandwidth", xml: `<network><name>x</name><forward mode='hostdev'><address type='pci' bus='1'/></forward><portgroup name='p'><bandwidth><inbound average='1'/></bandwidth></portgroup></network>`, element: "bandwidth", rule: "portgroup <bandwidth> is not allowed"},
		// routes
		{name: "route gateway outside", repl: map[string]string{"%MORE%": "<route address='10.9.0.0' prefix='16' gateway='10.1.1.1'/>"}, element: "route", rule: "lies in none of the network's subnets"},
		{name: "route not a network address", repl: map[string]string{"%MORE%": "<route address='10.9.1.0' prefix='16' gateway='192.168.50.2'/>"}, element: "route", rule: "is not the network address of /16"},
		{name: "route without prefix", repl: map[string]string{"%MORE%": "<route address='10.9.0.0' gateway='192.168.50.2'/>"}, element: "route", rule: "not the network address of /0"},
		{name: "v6 route without family", repl: map[string]string{"%MORE%": "<route address='2001:db8::' prefix='64' gateway='fd00::2'/>"}, element: "route", rule: "does not belong to family \"ipv4\""},
		{name: "route gateway family", repl: map[string]string{"%MORE%": "<route address='10.9.0.0' prefix='16' gateway='fd00::2'/>"}, element: "route", rule: "not of the route's family"},
		{name: "route metric 0", repl: map[string]string{"%MORE%": "<route address='10.9.0.0' prefix='16' gateway='192.168.50.2' metric='0'/>"}, element: "route", rule: "metric must be positive"},
		{name: "route without gateway", repl: map[string]string{"%MORE%": "<route address='10.9.0.0' prefix='16'/>"}, element: "route", rule: "needs an address and a gateway"},
		{name: "route v6 netmask", repl: map[string]string{"%MORE%": "<route family='ipv6' address='2001:db8::' netmask='255.0.0.0' gateway='fd00::2'/>"}, element: "route", rule: "takes a prefix, not a netmask"},
		// bridge, mac, mtu, domain, port
		{name: "bad mac", repl: map[string]string{"%TOP%": "<mac address='zz'/>"}, element: "mac", rule: "unicast MAC"},
		{name: "multicast mac", repl: map[string]string{"%TOP%": "<mac address='03:00:00:00:00:01'/>"}, element: "mac", rule: "unicast MAC"},
		{name: "bad mtu", repl: map[string]string{"%TOP%": "<mtu size='0'/>"}, element: "mtu", rule: "positive"},
		{name: "stp value", xml: `<network><name>x</name><bridge name='b' stp='yes'/></network>`, element: "bridge", rule: "on or off"},
		{name: "delay value", xml: `<network><name>x</name><bridge name='b' delay='-1'/></network>`, element: "bridge", rule: "unsigned number"},
		{name: "macTableManager", xml: `<network><name>x</name><bridge name='b' macTableManager='switch'/></network>`, element: "bridge", rule: "kernel or libvirt"},
		{name: "domain localOnly", xml: `<network><name>x</name><domain name='a' localOnly='1'/></network>`, element: "domain", rule: "must be yes or no"},
		{name: "port isolated", xml: `<network><name>x</name><port isolated='maybe'/></network>`, element: "port", rule: "must be yes or no"},
		// dns
		{name: "dns host without hostname", repl: map[string]string{"%MORE%": "<dns><host ip='192.168.50.9'/></dns>"}, element: "host", rule: "at least one <hostname>"},
		{name: "dns host without ip", repl: map[string]string{"%MORE%": "<dns><host><hostname>a</hostname></host></dns>"}, element: "host", rule: "needs an ip"},
		{name: "dns empty hostname", repl: map[string]string{"%MORE%": "<dns><host ip='192.168.50.9'><hostname></hostname></host></dns>"}, element: "hostname", rule: "must not be empty"},
		{name: "dns disabled with records", repl: map[string]string{"%MORE%": "<dns enable='no'><txt name='a' value='b'/></dns>"}, element: "dns", rule: "disabled <dns>"},
		{name: "forwarder empty", repl: map[string]string{"%MORE%": "<dns><forwarder/></dns>"}, element: "forwarder", rule: "needs addr or domain"},
		{name: "forwarder addr", repl: map[string]string{"%MORE%": "<dns><forwarder addr='dns.example'/></dns>"}, element: "forwarder", rule: "not an IP address"},
		{name: "txt comma", repl: map[string]string{"%MORE%": "<dns><txt name='a,b' value='c'/></dns>"}, element: "txt", rule: "without spaces or commas"},
		{name: "txt value", repl: map[string]string{"%MORE%": "<dns><txt name='a'/></dns>"}, element: "txt", rule: "needs a value"},
		{name: "srv protocol chars", repl: map[string]string{"%MORE%": "<dns><srv service='x' protocol='tc.p'/></dns>"}, element: "srv", rule: "character libvirt does not allow"},
		{name: "srv without protocol", repl: map[string]string{"%MORE%": "<dns><srv service='x'/></dns>"}, element: "srv", rule: "needs a protocol"},
		{name: "srv port without target", repl: map[string]string{"%MORE%": "<dns><srv service='x' protocol='tcp' port='80'/></dns>"}, element: "srv", rule: "port needs a target"},
		{name: "srv port 0", repl: map[string]string{"%MORE%": "<dns><srv service='x' protocol='tcp' target='t' port='0'/></dns>"}, element: "srv", rule: "from 1 to 65535"},
		// portgroups, vlan, virtualport, bandwidth
		{name: "portgroup without name", repl: map[string]string{"%MORE%": "<portgroup/>"}, element: "portgroup", rule: "needs a name"},
		{name: "portgroup twice", repl: map[string]string{"%MORE%": "<portgroup name='a'/><portgroup name='a'/>"}, element: "portgroup", rule: "used twice"},
		{name: "two default portgroups", repl: map[string]string{"%MORE%": "<portgroup name='a' default='yes'/><portgroup name='b' default='yes'/>"}, element: "portgroup", rule: "only one portgroup may be the default"},
		{name: "vlan in nat", repl: map[string]string{"%MORE%": "<vlan><tag id='5'/></vlan>"}, element: "network", rule: "<vlan> needs forward mode"},
		{name: "portgroup vlan in nat", repl: map[string]string{"%MORE%": "<portgroup name='p'><vlan><tag id='5'/></vlan></portgroup>"}, element: "network", rule: "<vlan> needs forward mode"},
		{name: "vlan id", xml: ovsHead + `<vlan><tag id='4096'/></vlan></network>`, element: "tag", rule: "from 0 to 4095"},
		{name: "vlan trunk no", xml: ovsHead + `<vlan trunk='no'><tag id='1'/><tag id='2'/></vlan></network>`, element: "vlan", rule: "more than one tag"},
		{name: "vlan native twice", xml: ovsHead + `<vlan trunk='yes'><tag id='1' nativeMode='tagged'/><tag id='2' nativeMode='untagged'/></vlan></network>`, element: "tag", rule: "only one vlan tag"},
		{name: "vlan nativeMode", xml: ovsHead + `<vlan trunk='yes'><tag id='1' nativeMode='both'/></vlan></network>`, element: "tag", rule: "tagged or untagged"},
		{name: "vlan no tags", xml: ovsHead + `<vlan/></network>`, element: "vlan", rule: "at least one <tag id>"},
		{name: "virtualport type", xml: `<network><name>x</name><forward mode='bridge'/><bridge name='b'/><virtualport type='vmware'/></network>`, element: "virtualport", rule: "must be 802.1Qbg"},
		{name: "network virtualport needs type", xml: `<network><name>x</name><forward mode='bridge'/><bridge name='b'/><virtualport/></network>`, element: "virtualport", rule: "needs a type"},
		{name: "bandwidth floor", repl: map[string]string{"%MORE%": "<bandwidth><inbound average='10' floor='5'/></bandwidth>"}, element: "inbound", rule: "floor is not supported"},
		{name: "bandwidth peak alone", repl: map[string]string{"%MORE%": "<bandwidth><outbound peak='10'/></bandwidth>"}, element: "outbound", rule: "need an average"},
		{name: "bandwidth number", repl: map[string]string{"%MORE%": "<bandwidth><outbound average='fast'/></bandwidth>"}, element: "outbound", rule: "unsigned number"},
		// vnetguard and pass-through
		{name: "bad policy", repl: map[string]string{"%TOP%": "<metadata><v:policy xmlns:v='urn:x-vnetguard:policy:1' on-conflict='explode'/></metadata>"}, element: "policy", rule: "must be renumber, destroy or warn"},
		{name: "two policies", repl: map[string]string{"%TOP%": "<metadata><v:policy xmlns:v='urn:x-vnetguard:policy:1' on-conflict='warn'/><v:policy xmlns:v='urn:x-vnetguard:policy:1' on-conflict='warn'/></metadata>"}, element: "policy", rule: "only one vnetguard:policy"},
		{name: "autoaddr", xml: `<network autoaddr='true'><name>x</name></network>`, element: "network", rule: "autoaddr=\"true\" must be yes or no"},
		{name: "dnsmasq option value", xml: `<network xmlns:dnsmasq='http://libvirt.org/schemas/network/dnsmasq/1.0'><name>x</name><dnsmasq:options><dnsmasq:option/></dnsmasq:options></network>`, element: "option", rule: "needs a value"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := c.xml
			if src == "" {
				src = build(c.repl)
			}
			d, err := Parse([]byte(src))
			if err != nil {
				t.Fatalf("parse: %v\n%s", err, src)
			}
			d.Path = "test.xml"
			probs := d.Validate()
			for _, p := range probs {
				if !strings.Contains(p.Rule, c.rule) {
					continue
				}
				if tagOf(p.Element) != c.element {
					t.Errorf("rule %q reported on <%s>, want <%s>", c.rule, tagOf(p.Element), c.element)
				}
				msg := p.Error()
				if !strings.HasPrefix(msg, "test.xml: <"+c.element+">") || !strings.HasSuffix(msg, p.Rule) {
					t.Errorf("message %q does not name file and element", msg)
				}
				if p.Line == 0 {
					t.Errorf("no line for %s", p.Element)
				} else if !strings.Contains(msg, fmt.Sprintf("(line %d)", p.Line)) {
					t.Errorf("message %q lacks the line", msg)
				}
				return
			}
			t.Fatalf("want a problem %q, got %v\n%s", c.rule, probs, src)
		})
	}
}

func TestProblemError(t *testing.T) {
	for _, c := range []struct {
		p    Problem
		want string
	}{
		{Problem{File: "a.xml", Element: "network/ip[0]/dhcp[0]/range[1]", Line: 7, Rule: "r"}, "a.xml: <range> (line 7): r"},
		{Problem{Element: "network/ip[0]", Rule: "r"}, "<ip>: r"},
		{Problem{File: "a.xml", Rule: "r"}, "a.xml: r"},
		{Problem{Line: 3, Rule: "r"}, "line 3: r"},
		{Problem{Element: "network/metadata[0]/urn:x-vnetguard:policy:1 policy[0]", Line: 2, Rule: "r"}, "<policy> (line 2): r"},
	} {
		if got := c.p.Error(); got != c.want {
			t.Errorf("%+v: %q, want %q", c.p, got, c.want)
		}
	}
}

func TestForwardModesNeedAnIP(t *testing.T) {
	for _, mode := range []string{"nat", "route", "open"} {
		d, err := Parse([]byte("<network><name>x</name><forward mode='" + mode + "'/></network>"))
		if err != nil {
			t.Fatal(err)
		}
		probs := d.Validate()
		if len(probs) != 1 || !strings.Contains(probs[0].Rule, "needs an <ip>") {
			t.Errorf("mode %s without <ip>: %v", mode, probs)
		}
	}
	d, _ := Parse([]byte("<network><name>isolated</name></network>"))
	if probs := d.Validate(); len(probs) != 0 {
		t.Errorf("an isolated network without <ip> is valid: %v", probs)
	}
}

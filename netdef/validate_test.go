package netdef

import (
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
	for _, f := range []string{"testdata/default.xml", "testdata/rich.xml"} {
		if probs := mustParseFile(t, f).Validate(); len(probs) != 0 {
			t.Errorf("%s: %v", f, probs)
		}
	}
	valid := []map[string]string{
		{},
		{"%MASK%": "netmask='255.255.255.0'"},
		{"%MASK%": ""}, // classful default /24 for 192.168
		{"%MODE%": "route"},
		{"%MORE%": "<ip family='ipv6' address='fd00:1::1' prefix='64'><dhcp><range start='fd00:1::10' end='fd00:1::ff'/><host id='0:1:2' ip='fd00:1::5'/></dhcp></ip>"},
		{"%MORE%": "<route address='10.9.0.0' prefix='16' gateway='192.168.50.2'/>"},
		{"%DHCP%": "<host mac='52:54:00:00:00:01' ip='192.168.50.5'/><host name='n' ip='192.168.50.6'/>"},
		{"%TOP%": "<metadata><v:policy xmlns:v='urn:x-vnetguard:policy:1' on-conflict='warn'/></metadata>"},
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

func TestValidateRules(t *testing.T) {
	cases := []struct {
		name    string
		repl    map[string]string
		element string
		rule    string
	}{
		{"no name", map[string]string{"%NAME%": ""}, "network", "needs a <name>"},
		{"slash in name", map[string]string{"%NAME%": "a/b"}, "name", "must not contain '/'"},
		{"bad uuid", map[string]string{"%TOP%": "<uuid>xyz</uuid>"}, "uuid", "not a UUID"},
		{"family mismatch", map[string]string{"%MORE%": "<ip family='ipv6' address='10.0.0.1' prefix='8'/>"}, "ip", "does not belong to family"},
		{"ipv6 without family", map[string]string{"%MORE%": "<ip address='fd00::1' prefix='64'/>"}, "ip", "does not belong to family \"ipv4\""},
		{"netmask and prefix", map[string]string{"%MASK%": "netmask='255.255.255.0' prefix='24'"}, "ip", "netmask and prefix must not be given together"},
		{"ipv6 netmask", map[string]string{"%MORE%": "<ip family='ipv6' address='fd00::1' netmask='255.255.255.0'/>"}, "ip", "takes a prefix, not a netmask"},
		{"prefix too long v4", map[string]string{"%MASK%": "prefix='33'"}, "ip", "from 0 to 32"},
		{"prefix too long v6", map[string]string{"%MORE%": "<ip family='ipv6' address='fd00::1' prefix='129'/>"}, "ip", "from 0 to 128"},
		{"netmask not contiguous", map[string]string{"%MASK%": "netmask='255.0.255.0'"}, "ip", "not contiguous"},
		{"two ipv4 dhcp", map[string]string{"%MORE%": "<ip address='10.1.0.1' prefix='24'><dhcp><range start='10.1.0.5' end='10.1.0.6'/></dhcp></ip>"}, "dhcp", "only one IPv4 <ip> may have <dhcp>"},
		{"range outside", map[string]string{"%DHCP%": "<range start='192.168.51.10' end='192.168.51.20'/>"}, "range", "outside the network's subnet"},
		{"range network address", map[string]string{"%DHCP%": "<range start='192.168.50.0' end='192.168.50.20'/>"}, "range", "network address"},
		{"range broadcast", map[string]string{"%DHCP%": "<range start='192.168.50.10' end='192.168.50.255'/>"}, "range", "broadcast address"},
		{"range reversed", map[string]string{"%DHCP%": "<range start='192.168.50.30' end='192.168.50.20'/>"}, "range", "is after end"},
		{"range too large", map[string]string{"%MASK%": "prefix='8'", "%DHCP%": "<range start='192.168.0.1' end='192.169.0.1'/>"}, "range", "at most 65535"},
		{"host outside", map[string]string{"%DHCP%": "<host mac='52:54:00:00:00:01' ip='10.0.0.5'/>"}, "host", "outside the network's subnet"},
		{"host without mac or name", map[string]string{"%DHCP%": "<host ip='192.168.50.5'/>"}, "host", "needs a mac or a name"},
		{"host multicast mac", map[string]string{"%DHCP%": "<host mac='01:00:5e:00:00:01' ip='192.168.50.5'/>"}, "host", "unicast MAC"},
		{"v6 host with mac", map[string]string{"%MORE%": "<ip family='ipv6' address='fd00:1::1' prefix='64'><dhcp><host mac='52:54:00:00:00:01' ip='fd00:1::5'/></dhcp></ip>"}, "host", "not mac"},
		{"nat without nat mode", map[string]string{"%MODE%": "route' dev='x'><nat/></forward><x a='"}, "nat", "only allowed with forward mode nat"},
		{"open with dev", map[string]string{"%MODE%": "open' dev='eth0"}, "forward", "open takes no dev"},
		{"bridge mode with ip", map[string]string{"%MODE%": "bridge"}, "ip", "not allowed with forward mode"},
		{"unknown mode", map[string]string{"%MODE%": "teleport"}, "forward", "unknown forward mode"},
		{"route gateway outside", map[string]string{"%MORE%": "<route address='10.9.0.0' prefix='16' gateway='10.1.1.1'/>"}, "route", "lies in none of the network's subnets"},
		{"bad policy", map[string]string{"%TOP%": "<metadata><v:policy xmlns:v='urn:x-vnetguard:policy:1' on-conflict='explode'/></metadata>"}, "policy", "must be renumber, destroy or warn"},
		{"bad mac", map[string]string{"%TOP%": "<mac address='zz'/>"}, "mac", "unicast MAC"},
		{"bad mtu", map[string]string{"%TOP%": "<mtu size='0'/>"}, "mtu", "positive"},
		{"dns host without hostname", map[string]string{"%MORE%": "<dns><host ip='192.168.50.9'/></dns>"}, "host", "at least one <hostname>"},
		{"srv protocol", map[string]string{"%MORE%": "<dns><srv service='x' protocol='sctp'/></dns>"}, "srv", "tcp or udp"},
		{"lease unit", map[string]string{"%DHCP%": "<range start='192.168.50.10' end='192.168.50.20'><lease expiry='5' unit='days'/></range>"}, "lease", "seconds, minutes or hours"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := build(c.repl)
			d, err := Parse([]byte(src))
			if err != nil {
				t.Fatalf("parse: %v\n%s", err, src)
			}
			d.Path = "test.xml"
			probs := d.Validate()
			for _, p := range probs {
				if strings.Contains(p.Rule, c.rule) {
					if tagOf(p.Element) != c.element {
						t.Errorf("rule %q reported on <%s>, want <%s>", c.rule, tagOf(p.Element), c.element)
					}
					msg := p.Error()
					if !strings.HasPrefix(msg, "test.xml: <"+c.element+">") {
						t.Errorf("message %q does not name file and element", msg)
					}
					if p.Element != "network" && p.Line == 0 {
						t.Errorf("no line for %s", p.Element)
					}
					return
				}
			}
			t.Fatalf("want a problem %q, got %v\n%s", c.rule, probs, src)
		})
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

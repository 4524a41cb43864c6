package firewall

import (
	"strings"
	"testing"

	"github.com/vnetguard/vnetguard/netdef"
)

func def(t *testing.T, xml string) *netdef.Definition {
	t.Helper()
	d, err := netdef.Parse([]byte(xml))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func render(rules []Rule) string {
	var b strings.Builder
	for _, r := range rules {
		b.WriteString(r.String() + "\n")
	}
	return b.String()
}

const common = `input: iifname "br0" udp dport 53 accept
input: iifname "br0" udp dport 67 accept
input: iifname "br0" udp dport 547 accept
input: iifname "br0" tcp dport 53 accept
input: iifname "br0" icmpv6 type 133 accept
input: iifname "br0" icmpv6 type 134 accept
input: iifname "br0" icmpv6 type 135 accept
input: iifname "br0" icmpv6 type 136 accept
forward: iifname "br0" oifname "br0" accept
`

func TestRules(t *testing.T) {
	tests := []struct{ name, xml, want string }{{
		name: "nat: IPv4 masqueraded, IPv6 routed",
		xml: `<network><name>n</name><forward mode='nat'/><bridge name='br0'/><ip address='10.0.0.1' prefix='24'/>
<ip family='ipv6' address='fd00::1' prefix='64'/></network>`,
		want: common + `forward: iifname "br0" ip saddr 10.0.0.0/24 accept
forward: oifname "br0" ip daddr 10.0.0.0/24 ct state established,related accept
postrouting: oifname != "br0" ip saddr 10.0.0.0/24 ip daddr != 10.0.0.0/24 masquerade
forward: iifname "br0" ip6 saddr fd00::/64 accept
forward: oifname "br0" ip6 daddr fd00::/64 accept
forward: iifname "br0" drop
forward: oifname "br0" drop
`,
	}, {
		name: "nat ipv6='yes' masquerades IPv6 too",
		xml:  `<network><name>n</name><forward mode='nat'><nat ipv6='yes'/></forward><bridge name='br0'/><ip family='ipv6' address='fd00::1' prefix='64'/></network>`,
		want: common + `forward: iifname "br0" ip6 saddr fd00::/64 accept
forward: oifname "br0" ip6 daddr fd00::/64 ct state established,related accept
postrouting: oifname != "br0" ip6 saddr fd00::/64 ip6 daddr != fd00::/64 masquerade
forward: iifname "br0" drop
forward: oifname "br0" drop
`,
	}, {
		name: "route: both ways, no NAT",
		xml: `<network><name>n</name><forward mode='route'/><bridge name='br0'/><ip address='10.0.0.1' prefix='24'/>
<ip family='ipv6' address='fd00::1' prefix='64'/></network>`,
		want: common + `forward: iifname "br0" ip saddr 10.0.0.0/24 accept
forward: oifname "br0" ip daddr 10.0.0.0/24 accept
forward: iifname "br0" ip6 saddr fd00::/64 accept
forward: oifname "br0" ip6 daddr fd00::/64 accept
forward: iifname "br0" drop
forward: oifname "br0" drop
`,
	}, {
		name: "open without DHCP: no rules at all",
		xml:  `<network><name>n</name><forward mode='open'/><bridge name='br0'/><ip address='10.0.0.1' prefix='24'/><ip family='ipv6' address='fd00::1' prefix='64'/></network>`,
		want: ``,
	}, {
		name: "open with DHCPv4 (vnetguard's dnsmasq): still no rules",
		xml:  `<network><name>n</name><forward mode='open'/><bridge name='br0'/><ip address='10.0.0.1' prefix='24'><dhcp/></ip><ip family='ipv6' address='fd00::1' prefix='64'/></network>`,
		want: ``,
	}, {
		name: "isolated: nothing beyond the bridge",
		xml:  `<network><name>n</name><bridge name='br0'/><ip address='10.0.0.1' prefix='24'/></network>`,
		want: common + `forward: iifname "br0" drop
forward: oifname "br0" drop
`,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := render(Rules([]*netdef.Definition{def(t, tc.xml)})); got != tc.want {
				t.Fatalf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
	if r := Rules(nil); len(r) != 0 {
		t.Fatalf("no networks, rules %v", r)
	}
}

func TestCompile(t *testing.T) {
	for _, r := range Rules([]*netdef.Definition{def(t, `<network><name>n</name><forward mode='nat'/><bridge name='br0'/><ip address='10.0.0.1' prefix='24'/><ip family='ipv6' address='fd00::1' prefix='64'/></network>`)}) {
		if _, err := compile(r); err != nil {
			t.Errorf("%s: %v", r, err)
		}
	}
	for _, r := range Rules([]*netdef.Definition{def(t, `<network><name>n</name><forward mode='route'/><bridge name='br0'/><ip address='10.0.0.1' prefix='24'/></network>`)}) {
		if _, err := compile(r); err != nil {
			t.Errorf("%s: %v", r, err)
		}
	}
	if _, err := compile(Rule{Chain: Input, Proto: "sctp", Port: 1}); err == nil {
		t.Error("unknown protocol compiled")
	}
}

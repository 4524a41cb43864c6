package profiles

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func TestRangePrefixes(t *testing.T) {
	a := netip.MustParseAddr
	for _, tc := range []struct {
		from, to string
		want     []string
	}{
		{"fd46:1::100", "fd46:1::1ff", []string{"fd46:1::100/120"}},
		{"fd46:1::100", "fd46:1::100", []string{"fd46:1::100/128"}},
		{"fd46:1::ff", "fd46:1::102", []string{"fd46:1::ff/128", "fd46:1::100/127", "fd46:1::102/128"}},
		{"10.0.0.1", "10.0.0.6", []string{"10.0.0.1/32", "10.0.0.2/31", "10.0.0.4/31", "10.0.0.6/32"}},
	} {
		var got []string
		for _, p := range rangePrefixes(a(tc.from), a(tc.to)) {
			got = append(got, p.String())
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s-%s: got %v, want %v", tc.from, tc.to, got, tc.want)
		}
	}
}

const proxyXML = `<network><name>pub</name>
<metadata><vnetguard:proxy-ndp xmlns:vnetguard="urn:x-vnetguard:policy:1"/></metadata>
<forward mode='route' dev='eth0'/><bridge name='vbrpub'/>
<ip family='ipv6' address='2001:db8:1::2' prefix='64'><dhcp><range start='2001:db8:1::100' end='2001:db8:1::103'/><host id='00:01' ip='2001:db8:1::50'/></dhcp></ip>
</network>`

// A proxy-NDP network proxies exactly its DHCPv6 addresses on its uplink,
// routes them to the bridge, keeps its own /64 route below the uplink's,
// and tells its guests the prefix is off-link.
func TestProxyNDPProfile(t *testing.T) {
	d := parse(t, proxyXML)
	if probs := d.Validate(); len(probs) > 0 {
		t.Fatal(probs)
	}
	p, err := FromDefinition(d, false)
	if err != nil {
		t.Fatal(err)
	}
	var addrs, routes []string
	for _, a := range p.ProxyAddrs {
		addrs = append(addrs, a.String())
	}
	for _, r := range p.IPv6Routes {
		routes = append(routes, r.String())
	}
	if p.ProxyUplink != "eth0" || p.IPv6RouteMetric != 4000 ||
		!reflect.DeepEqual(addrs, []string{"2001:db8:1::100", "2001:db8:1::101", "2001:db8:1::102", "2001:db8:1::103", "2001:db8:1::50"}) ||
		!reflect.DeepEqual(routes, []string{"2001:db8:1::100/126", "2001:db8:1::50/128"}) {
		t.Fatalf("profile: uplink %q metric %d addrs %v routes %v", p.ProxyUplink, p.IPv6RouteMetric, addrs, routes)
	}
	s := p.Settings()
	if got := s["ipv6"]["route-metric"].Value(); got != int64(4000) {
		t.Errorf("route-metric %v", got)
	}
	conf, err := DnsmasqConfig(d, testFiles)
	if err != nil || !strings.Contains(string(conf), "dhcp-range=2001:db8:1::100,2001:db8:1::103,off-link,64\n") {
		t.Fatalf("dnsmasq configuration (%v):\n%s", err, conf)
	}
}

func TestProxyNDPRefuses(t *testing.T) {
	for _, tc := range []struct{ xml, want string }{
		{strings.Replace(proxyXML, "<dhcp><range start='2001:db8:1::100' end='2001:db8:1::103'/><host id='00:01' ip='2001:db8:1::50'/></dhcp>", "", 1), "guests' addresses known"},
		{strings.Replace(proxyXML, "end='2001:db8:1::103'", "end='2001:db8:1::ffff'", 1), "more than 1024 addresses"},
	} {
		_, err := FromDefinition(parse(t, tc.xml), false)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("got %v, want %q", err, tc.want)
		}
	}
	d := parse(t, strings.Replace(proxyXML, " dev='eth0'", "", 1))
	if probs := d.Validate(); len(probs) == 0 || !strings.Contains(probs[0].Error(), "uplink named") {
		t.Errorf("no uplink: %v", probs)
	}
}

func TestProxiedRecord(t *testing.T) {
	r := proxied{uplink: "eth0", prefixes: []netip.Prefix{netip.MustParsePrefix("2001:db8:1::/64")}}
	back, ok := parseProxied([]byte(r.String()))
	if !ok || !reflect.DeepEqual(back, r) {
		t.Fatalf("%q -> %+v %v", r.String(), back, ok)
	}
	if _, ok := parseProxied([]byte("eth0 nonsense\n")); ok {
		t.Fatal("accepted a broken record")
	}
}

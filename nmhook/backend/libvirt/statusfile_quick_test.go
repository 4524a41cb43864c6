package libvirt

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/vnetguard/vnetguard/netdef"
)

// generalStatus is what the general path makes of a status file: the
// network cut out by encoding/xml, then parsed and validated by netdef.
func generalStatus(b []byte, name string) (net any, raw string, err error) {
	n, err := statusNetwork(name+".xml", b)
	if err != nil {
		return nil, "", err
	}
	c := convert(n)
	if c.Err != nil {
		return nil, "", c.Err
	}
	return c.Live.Network, string(c.Live.Raw), nil
}

// A status file of each shape the quick reader takes: libvirt's default
// network as libvirt 9.0 writes it, the benchmarks' networks (a policy in
// metadata), IPv6, static hosts, NAT ranges, several ways to spell the
// policy's namespace, other metadata kept verbatim.
var quickAccepted = map[string]string{
	"libvirt default": statusDefault,
	"policy and dhcp": `<networkstatus>
  <class_id bitmap='0-2'/>
  <floor sum='0'/>
  <network connections='2'>
    <name>default</name>
    <uuid>6a1a6f8e-5d8e-4c47-9d0c-0f6b2c5b7a11</uuid>
    <metadata>
      <vnetguard:policy xmlns:vnetguard="urn:x-vnetguard:policy:1" on-conflict="renumber"/>
    </metadata>
    <forward mode='nat'>
      <nat ipv6='yes'>
        <address start='203.0.113.10' end='203.0.113.20'/>
        <port start='1024' end='65535'/>
      </nat>
    </forward>
    <bridge name='vbr-hc07' stp='on' delay='0'/>
    <mac address='52:54:00:12:34:56'/>
    <mtu size='9000'/>
    <domain name='example.lan' localOnly='yes'/>
    <dns enable='yes' forwardPlainNames='no'/>
    <ip address='10.77.7.1' netmask='255.255.255.0' localPtr='yes'>
      <dhcp>
        <range start='10.77.7.100' end='10.77.7.200'/>
        <host mac='52:54:00:aa:bb:cc' name='vm1' ip='10.77.7.10'/>
      </dhcp>
    </ip>
    <ip family='ipv6' address='fd42:77:7::1' prefix='64'>
      <dhcp/>
    </ip>
  </network>
</networkstatus>
`,
	"light, no wrapper bookkeeping": "<networkstatus><network><name>default</name><bridge name='vbr-hs001'/><dns enable='no'/><ip address='10.100.1.1' prefix='24'/></network></networkstatus>",
	"default namespace policy":      `<networkstatus><network><name>default</name><metadata><policy xmlns="urn:x-vnetguard:policy:1" on-conflict="warn"></policy><app:x xmlns:app="urn:app"><app:y a="b">text</app:y></app:x></metadata><bridge name='virbr9'/></network></networkstatus>`,
	"policy, not ours":              `<networkstatus><network><name>default</name><metadata><policy on-conflict="warn"/><v:policy xmlns:v="urn:other" on-conflict="destroy"/></metadata></network></networkstatus>`,
	"routed, interfaces":            `<networkstatus><network><name>default</name><forward mode='route' dev='eth0'><interface dev='eth0' connections='1'/></forward><bridge name='virbr3'/><ip address='192.0.2.1' prefix='28'/></network></networkstatus>`,
	"double quotes, spaced":         "<networkstatus>\n\t<network  >\n<name>default</name>\n<bridge  name = \"br x\"   stp=\"off\" />\n</network>\n</networkstatus>\n<!-- trailing comment -->\n",
	"empty metadata and name":       `<networkstatus><network><name>default</name><metadata/><uuid/></network></networkstatus>`,
}

// Shapes it leaves to the general path (which may accept or refuse them).
var quickRefused = map[string]string{
	"entity in a value":          strings.Replace(statusDefault, "virbr0", "vir&amp;br0", 1),
	"comment inside":             strings.Replace(statusDefault, "<floor", "<!-- x --><floor", 1),
	"unknown element":            strings.Replace(statusDefault, "</network>", "<route address='10.9.0.0' prefix='16' gateway='192.168.122.2'/></network>", 1),
	"unknown attribute":          strings.Replace(statusDefault, "stp='on'", "stp='on' foo='1'", 1),
	"title":                      strings.Replace(statusDefault, "<uuid>", "<title>t</title><uuid>", 1),
	"CDATA":                      strings.Replace(statusDefault, "<name>default</name>", "<name><![CDATA[default]]></name>", 1),
	"prefixed network":           strings.Replace(statusDefault, "<floor sum='0'/>", "<x:network xmlns:x='urn:x'/>", 1),
	"namespace on network":       strings.Replace(statusDefault, "<network>", "<network xmlns:v='urn:x-vnetguard:policy:1'>", 1),
	"prefix from an ancestor":    `<networkstatus><network><name>default</name><metadata><v:policy on-conflict="warn"/></metadata></network></networkstatus>`,
	"repeated bridge":            strings.Replace(statusDefault, "<mac ", "<bridge name='x'/><mac ", 1),
	"repeated attribute":         strings.Replace(statusDefault, "stp='on'", "stp='on' stp='off'", 1),
	"non-ASCII":                  strings.Replace(statusDefault, "virbr0", "virbr\u00e90", 1),
	"carriage return":            strings.ReplaceAll(statusDefault, "\n", "\r\n"),
	"processing instruction":     "<?xml version='1.0'?>" + statusDefault,
	"dhcp lease":                 strings.Replace(statusDefault, "'192.168.122.254'/>", "'192.168.122.254'><lease expiry='1' unit='hours'/></range>", 1),
	"text in an element":         strings.Replace(statusDefault, "<bridge name='virbr0' stp='on' delay='0'/>", "<bridge name='virbr0'>x</bridge>", 1),
	"attribute without space":    strings.Replace(statusDefault, "stp='on' delay", "stp='on'delay", 1),
	"truncated":                  statusDefault[:len(statusDefault)/2],
	"unknown wrapper":            strings.ReplaceAll(statusDefault, "networkstatus", "netstate"),
	"no network":                 "<networkstatus><floor sum='0'/></networkstatus>",
	"two networks":               "<networkstatus><network><name>default</name></network><network><name>x</name></network></networkstatus>",
	"wrong name":                 strings.Replace(statusDefault, "<name>default</name>", "<name>other</name>", 1),
	"not XML":                    "\x00\x01garbage",
	"trailing garbage":           statusDefault + "x",
	"mismatched end tag":         strings.Replace(statusDefault, "</dhcp>", "</dhcq>", 1),
	"attribute on networkstatus": strings.Replace(statusDefault, "<networkstatus>", "<networkstatus a='1'>", 1),
}

func TestQuickStatusAgreesWithGeneral(t *testing.T) {
	for name, body := range quickAccepted {
		d, ok := quickStatus([]byte(body), "default")
		if !ok {
			t.Errorf("%s: quick reader refused it", name)
			continue
		}
		want, raw, err := generalStatus([]byte(body), "default")
		if err != nil {
			t.Errorf("%s: general path refused it: %v", name, err)
			continue
		}
		if !reflect.DeepEqual(d.Network, want) {
			t.Errorf("%s: models differ\nquick:   %+v\ngeneral: %+v", name, d.Network, want)
		}
		if string(d.Raw) != raw {
			t.Errorf("%s: raw differs\nquick:   %q\ngeneral: %q", name, d.Raw, raw)
		}
	}
	for name, body := range quickRefused {
		if _, ok := quickStatus([]byte(body), "default"); ok {
			t.Errorf("%s: quick reader accepted it", name)
		}
	}
}

// Whatever the reader goes through, a network reads the same: what the
// quick reader refuses falls back to the general one, which still refuses
// what it always refused.
func TestStatusNetworksFallBack(t *testing.T) {
	for name, body := range quickAccepted {
		nets, err := readStatusNetworks(statusDir(t, map[string]string{"default.xml": body, "default.pid": "1\n"}))
		if err != nil || len(nets) != 1 || nets[0].Err != nil || nets[0].Live == nil || !nets[0].Active || nets[0].Backend != Name {
			t.Errorf("%s: %+v, %v", name, nets, err)
		}
	}
	// Refused by the quick reader, fine for the general one.
	for _, name := range []string{"entity in a value", "comment inside", "unknown element", "title", "CDATA", "namespace on network", "carriage return", "processing instruction", "dhcp lease"} {
		nets, err := readStatusNetworks(statusDir(t, map[string]string{"default.xml": quickRefused[name]}))
		if err != nil || len(nets) != 1 || nets[0].Err != nil || nets[0].Live == nil {
			t.Errorf("%s: not read through the general path: %+v, %v", name, nets, err)
			continue
		}
		want, _, _ := generalStatus([]byte(quickRefused[name]), "default")
		if !reflect.DeepEqual(nets[0].Live.Network, want) {
			t.Errorf("%s: differs from the general path", name)
		}
	}
	// Refused by both: the whole read fails, and the caller asks libvirt.
	for _, name := range []string{"truncated", "unknown wrapper", "no network", "two networks", "wrong name", "not XML", "prefixed network", "mismatched end tag"} {
		if _, err := readStatusNetworks(statusDir(t, map[string]string{"default.xml": quickRefused[name]})); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := readStatusNetworks(filepath.Join(t.TempDir(), "nope")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing dir: %v", err)
	}
	if nets, err := readStatusNetworks(t.TempDir()); err != nil || len(nets) != 0 {
		t.Errorf("empty dir: %v, %v", nets, err)
	}
}

// An invalid network (libvirt would not have started it, but the file says
// so) carries the general path's error, line and all.
func TestStatusNetworksInvalidSameError(t *testing.T) {
	body := strings.Replace(statusDefault, "netmask='255.255.255.0'", "netmask='255.0.255.0'", 1)
	nets, err := readStatusNetworks(statusDir(t, map[string]string{"default.xml": body}))
	if err != nil || len(nets) != 1 {
		t.Fatalf("%+v, %v", nets, err)
	}
	n, _ := statusNetwork("default.xml", []byte(body))
	want := convert(n)
	if nets[0].Err == nil || want.Err == nil || nets[0].Err.Error() != want.Err.Error() {
		t.Fatalf("error %v, want %v", nets[0].Err, want.Err)
	}
}

// Whenever the quick reader accepts a file, the general path accepts it
// too and builds an equal model from the same bytes.
func FuzzQuickStatusAgrees(f *testing.F) {
	for _, body := range quickAccepted {
		f.Add(body)
	}
	for _, body := range quickRefused {
		f.Add(body)
	}
	f.Fuzz(func(t *testing.T, body string) {
		d, ok := quickStatus([]byte(body), "default")
		if !ok {
			return
		}
		n, err := statusNetwork("default.xml", []byte(body))
		if err != nil {
			t.Fatalf("quick accepted what the general reader refuses: %v", err)
		}
		// The validator then judges equal models alike: only the parse
		// must agree.
		g, err := netdef.Parse([]byte(n.LiveXML))
		if err != nil {
			t.Fatalf("quick accepted what netdef.Parse refuses: %v", err)
		}
		if !reflect.DeepEqual(d.Network, g.Network) || string(d.Raw) != string(g.Raw) {
			t.Fatalf("models differ\nquick:   %+v\ngeneral: %+v", d.Network, g.Network)
		}
	})
}

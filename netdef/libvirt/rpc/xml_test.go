package rpc

import (
	"encoding/xml"
	"errors"
	"io"
	"os"
	"slices"
	"strings"
	"testing"

	libvirt "github.com/digitalocean/go-libvirt"
)

func TestDomainNICs(t *testing.T) {
	data, err := os.ReadFile("testdata/domain-live.xml")
	if err != nil {
		t.Fatal(err)
	}
	nics, err := domainNICs(data, "default")
	if err != nil {
		t.Fatal(err)
	}
	want := []GuestNIC{
		{Domain: "guest1", DomainUUID: "6f1a2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", MAC: "52:54:00:6b:3a:01",
			Target: "vnet0", Bridge: "virbr0", PortID: "0c1a5e1f-2b3c-4d5e-8f70-112233445566"},
		{Domain: "guest1", DomainUUID: "6f1a2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", MAC: "52:54:00:6b:3a:04",
			Target: "vnet3", Bridge: "virbr0", PortID: "2e3c7031-4d5e-4f60-a192-334455667788"},
	}
	if len(nics) != len(want) {
		t.Fatalf("got %d NICs on default, want %d: %+v", len(nics), len(want), nics)
	}
	for i, w := range want {
		g := nics[i]
		g.XML = ""
		if g != w {
			t.Errorf("NIC %d:\n got %+v\nwant %+v", i, g, w)
		}
		// XML is the element itself, byte for byte.
		x := nics[i].XML
		if !strings.HasPrefix(x, "<interface type='network'>") || !strings.HasSuffix(x, "</interface>") ||
			!strings.Contains(string(data), x) || !strings.Contains(x, w.MAC) {
			t.Errorf("NIC %d: XML is not its <interface> element:\n%s", i, x)
		}
	}

	if nics, _ := domainNICs(data, "isolated"); len(nics) != 1 || nics[0].Target != "vnet1" {
		t.Errorf("isolated: %+v, want vnet1", nics)
	}
	// type='bridge' on virbr0 is not on the network, and neither is the
	// metadata element that mentions it.
	if nics, _ := domainNICs(data, "virbr0"); len(nics) != 0 {
		t.Errorf("virbr0 is a bridge, not a network: %+v", nics)
	}
	// Asked with the network's bridge, the guest plugged straight into it
	// (type='bridge') is found too, so its link is bounced as well.
	nics, _ = domainNICsOn(data, "default", "virbr0")
	if len(nics) != 3 || !slices.ContainsFunc(nics, func(n GuestNIC) bool { return n.Target == "vnet2" && n.PortID == "" }) {
		t.Errorf("default on virbr0: %+v, want vnet0, vnet2 and vnet3", nics)
	}
}

// libvirt 9.0's live XML of the lab's guest VM (virsh dumpxml).
func TestDomainNICsLibvirt9(t *testing.T) {
	data, err := os.ReadFile("testdata/domain-live-libvirt9.xml")
	if err != nil {
		t.Fatal(err)
	}
	nics, err := domainNICs(data, "default")
	if err != nil || len(nics) != 1 {
		t.Fatalf("%+v, %v; want one NIC", nics, err)
	}
	const ifaceXML = `<interface type='network'>
      <mac address='52:54:00:2d:f2:66'/>
      <source network='default' portid='583bc3e6-41fa-4c1d-a4f4-5afdc5f882c2' bridge='virbr0'/>
      <target dev='vnet0'/>
      <model type='virtio'/>
      <alias name='net0'/>
      <rom enabled='no'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x02' function='0x0'/>
    </interface>`
	want := GuestNIC{Domain: "guest1", DomainUUID: "c2c37baf-2c68-4274-9a14-3306b6aea724", MAC: "52:54:00:2d:f2:66",
		Target: "vnet0", Bridge: "virbr0", PortID: "583bc3e6-41fa-4c1d-a4f4-5afdc5f882c2", XML: ifaceXML}
	if nics[0] != want {
		t.Errorf("got  %+v\nwant %+v", nics[0], want)
	}
	down, err := setLinkState(nics[0].XML, false)
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.Replace(ifaceXML, "\n    </interface>", "\n    <link state='down'/></interface>", 1); down != want {
		t.Errorf("link down:\n%s\nwant\n%s", down, want)
	}
}

// The XML of a domain that stopped after it was listed is its inactive
// definition: no id, no NICs.
func TestDomainNICsNotRunning(t *testing.T) {
	data, _ := os.ReadFile("testdata/domain-live.xml")
	inactive := strings.Replace(string(data), " id='3'", "", 1)
	nics, err := domainNICs([]byte(inactive), "default")
	if err != nil || len(nics) != 0 {
		t.Errorf("inactive domain: %+v, %v; want none", nics, err)
	}
}

func TestDomainNICsBadXML(t *testing.T) {
	for _, s := range []string{"", "<network/>", "<domain id='1'><devices><interface>", "<domain id='1'></devices>"} {
		if _, err := domainNICs([]byte(s), "default"); err == nil {
			t.Errorf("%q: no error", s)
		}
	}
}

func TestSetLinkState(t *testing.T) {
	const live = `<interface type='network'>
      <mac address='52:54:00:6b:3a:01'/>
      <source network='default' portid='0c1a5e1f-2b3c-4d5e-8f70-112233445566' bridge='virbr0'/>
      <target dev='vnet0'/>
      <model type='virtio'/>
      <alias name='net0'/>
    </interface>`
	for _, tc := range []struct {
		name, in string
		up       bool
		want     string
	}{
		{"add down", live, false, strings.Replace(live, "\n    </interface>", "\n    <link state='down'/></interface>", 1)},
		{"add up", live, true, strings.Replace(live, "\n    </interface>", "\n    <link state='up'/></interface>", 1)},
		{"replace",
			`<interface type='network'><mac address='52:54:00:00:00:01'/><link state='up'/><alias name='net0'/></interface>`, false,
			`<interface type='network'><mac address='52:54:00:00:00:01'/><link state='down'/><alias name='net0'/></interface>`},
		{"same state",
			`<interface type='network'><link state='down'/></interface>`, false,
			`<interface type='network'><link state='down'/></interface>`},
		{"link with end tag",
			`<interface type='network'><link state="up"></link><model type='virtio'/></interface>`, false,
			`<interface type='network'><link state='down'/><model type='virtio'/></interface>`},
		{"several links",
			`<interface type='network'><link state='up'/><mac address='x'/><link state='down'/></interface>`, true,
			`<interface type='network'><link state='up'/><mac address='x'/></interface>`},
		{"self-closing", `<interface type='network' />`, false, `<interface type='network'><link state='down'/></interface>`},
		{"deeper link untouched",
			`<interface type='network'><x><link state='up'/></x></interface>`, false,
			`<interface type='network'><x><link state='up'/></x><link state='down'/></interface>`},
		{"comments and entities kept",
			`<interface type='network'><!-- <link state='up'/> --><alias name='a&amp;b'/></interface>`, true,
			`<interface type='network'><!-- <link state='up'/> --><alias name='a&amp;b'/><link state='up'/></interface>`},
		{"surrounding whitespace kept", "\n  <interface type='network'></interface>\n", false,
			"\n  <interface type='network'><link state='down'/></interface>\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := setLinkState(tc.in, tc.up)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

func TestSetLinkStateErrors(t *testing.T) {
	for _, s := range []string{"", "<interface>", "<domain/>", "<interface/><interface/>", "text<interface/>", "<interface></iface>"} {
		if got, err := setLinkState(s, true); err == nil {
			t.Errorf("%q: no error, got %q", s, got)
		}
	}
}

// linkStates lists the state attribute of each <link> child of the root.
func linkStates(t testing.TB, s string) []string {
	d := xml.NewDecoder(strings.NewReader(s))
	depth := 0
	var states []string
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return states
		}
		if err != nil {
			t.Fatalf("result does not parse: %v\n%s", err, s)
		}
		switch e := tok.(type) {
		case xml.StartElement:
			depth++
			if depth == 2 && e.Name.Local == "link" && e.Name.Space == "" {
				st, _ := attr(e, "state")
				states = append(states, st)
			}
		case xml.EndElement:
			depth--
		}
	}
}

// Whatever interface element setLinkState accepts, the result parses, has
// exactly one <link> child with the asked state, and setting the same state
// again changes nothing.
func FuzzSetLinkState(f *testing.F) {
	f.Add(`<interface type='network'><mac address='52:54:00:00:00:01'/></interface>`, true)
	f.Add(`<interface type='network'><link state='up'/></interface>`, false)
	f.Add(`<interface/>`, true)
	f.Add(`<interface><link state="down"></link><link/></interface>`, true)
	f.Add(`<?xml version="1.0"?><interface><!-- c --><x><link/></x></interface>`, false)
	f.Fuzz(func(t *testing.T, in string, up bool) {
		out, err := setLinkState(in, up)
		if err != nil {
			return
		}
		want := "down"
		if up {
			want = "up"
		}
		if st := linkStates(t, out); len(st) != 1 || st[0] != want {
			t.Fatalf("link states %q, want [%s]\nin:  %s\nout: %s", st, want, in, out)
		}
		again, err := setLinkState(out, up)
		if err != nil || again != out {
			t.Fatalf("not idempotent (%v):\n%s\n%s", err, out, again)
		}
	})
}

func TestXMLName(t *testing.T) {
	for in, want := range map[string]string{
		"<network><name> default </name><uuid>x</uuid></network>": "default",
		"<network><bridge><name>no</name></bridge></network>":     "",
		"<network>":      "",
		"not xml at all": "",
	} {
		if got := xmlName(in); got != want {
			t.Errorf("xmlName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestUUID(t *testing.T) {
	u, err := parseUUID("0C1A5E1F-2B3C-4D5E-8F70-112233445566")
	if err != nil {
		t.Fatal(err)
	}
	if got := formatUUID(u); got != "0c1a5e1f-2b3c-4d5e-8f70-112233445566" {
		t.Errorf("round trip: %s", got)
	}
	if v, err := parseUUID("0c1a5e1f2b3c4d5e8f70112233445566"); err != nil || v != u {
		t.Errorf("undashed: %v %v", v, err)
	}
	for _, bad := range []string{"", "0c1a5e1f-2b3c-4d5e-8f70-11223344556", "0c1a5e1f-2b3c4d5e-8f70-1122-33445566",
		"zc1a5e1f-2b3c-4d5e-8f70-112233445566", "0c1a5e1f-2b3c-4d5e-8f70-1122334455667"} {
		if _, err := parseUUID(bad); err == nil {
			t.Errorf("parseUUID(%q): no error", bad)
		}
	}
}

func TestClassify(t *testing.T) {
	for code, notFound := range map[libvirt.ErrorNumber]bool{
		libvirt.ErrNoNetwork:        true,
		libvirt.ErrNoDomain:         true,
		libvirt.ErrNoNetworkPort:    true,
		libvirt.ErrDeviceMissing:    true,
		libvirt.ErrOperationInvalid: false,
		libvirt.ErrNetworkPortExist: false,
		libvirt.ErrInternalError:    false,
	} {
		lerr := libvirt.Error{Code: uint32(code), Message: "msg"}
		err := opError("do", "thing", lerr)
		if got := errors.Is(err, ErrNotFound); got != notFound {
			t.Errorf("code %d: ErrNotFound %v, want %v", code, got, notFound)
		}
		var back libvirt.Error
		if !errors.As(err, &back) || back.Code != uint32(code) {
			t.Errorf("code %d: libvirt.Error lost: %v", code, err)
		}
		if err.Error() != `libvirt: do "thing": msg` {
			t.Errorf("code %d: message %q", code, err)
		}
		if errors.Is(err, ErrNoReply) || errors.Is(err, ErrUnavailable) {
			t.Errorf("code %d: an answer is neither ErrNoReply nor ErrUnavailable", code)
		}
	}
	if opError("do", "thing", nil) != nil {
		t.Error("opError(nil) != nil")
	}
	for _, err := range []error{nil, libvirt.Error{Code: 1}, libvirt.ErrUnsupported} {
		if !answered(err) {
			t.Errorf("answered(%v) = false", err)
		}
	}
	for _, err := range []error{libvirt.ErrInterrupted, io.EOF, errors.New("x")} {
		if answered(err) {
			t.Errorf("answered(%v) = true", err)
		}
	}
}

package hostview

import (
	"maps"
	"slices"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// The raw link reader sees the same names, and the same ports in the same
// order, as netlink's full decoder, on this namespace's real links (read
// only).
func TestLinkTableAgreesWithNetlink(t *testing.T) {
	links, err := netlink.LinkList()
	if err != nil {
		t.Skipf("no netlink here: %v", err)
	}
	wantNames := map[int]string{}
	for _, l := range links {
		wantNames[l.Attrs().Index] = l.Attrs().Name
	}
	wantPorts := map[string][]string{}
	for _, l := range links {
		if m := l.Attrs().MasterIndex; m != 0 {
			wantPorts[wantNames[m]] = append(wantPorts[wantNames[m]], l.Attrs().Name)
		}
	}
	names, ports, err := Links()
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(names, wantNames) {
		t.Fatalf("names: raw %v, netlink %v", names, wantNames)
	}
	if !maps.EqualFunc(ports, wantPorts, slices.Equal) {
		t.Fatalf("ports: raw %v, netlink %v", ports, wantPorts)
	}
}

func TestLinkIndexNameMaster(t *testing.T) {
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Index = 7
	b := msg.Serialize()
	b = append(b, nl.NewRtAttr(unix.IFLA_MTU, nl.Uint32Attr(1500)).Serialize()...)
	b = append(b, nl.NewRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated("vnet3")).Serialize()...)
	b = append(b, nl.NewRtAttr(unix.IFLA_MASTER, nl.Uint32Attr(4)).Serialize()...)
	idx, name, master, ok := LinkIndexNameMaster(b)
	if !ok || idx != 7 || name != "vnet3" || master != 4 {
		t.Fatalf("got %d %q %d %v", idx, name, master, ok)
	}
	if _, _, _, ok := LinkIndexNameMaster(b[:unix.SizeofIfInfomsg-1]); ok {
		t.Fatal("a short message accepted")
	}
	// Garbage after the header: the index, no name, no master.
	idx, name, master, ok = LinkIndexNameMaster(append(msg.Serialize(), 0xff, 0xff, 0x03))
	if !ok || idx != 7 || name != "" || master != 0 {
		t.Fatalf("garbage: got %d %q %d %v", idx, name, master, ok)
	}
}

// ReadUnnamed sees the same prefixes as a full read.
func TestReadUnnamedSamePrefixes(t *testing.T) {
	full, err := Read()
	if err != nil {
		t.Skipf("no netlink here: %v", err)
	}
	bare, err := ReadUnnamed(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(bare.Addresses) != len(full.Addresses) || len(bare.Routes) != len(full.Routes) {
		t.Fatalf("unnamed %d addresses, %d routes; full %d, %d", len(bare.Addresses), len(bare.Routes), len(full.Addresses), len(full.Routes))
	}
	for i := range full.Addresses {
		if bare.Addresses[i].Prefix != full.Addresses[i].Prefix {
			t.Fatalf("address %d: %v, full %v", i, bare.Addresses[i].Prefix, full.Addresses[i].Prefix)
		}
	}
}

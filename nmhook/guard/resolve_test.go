package guard

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/vnetguard/vnetguard/conflict"
	"github.com/vnetguard/vnetguard/netdef/libvirtdbus"
)

// fakeLibvirt keeps networks in memory. The real thing is exercised by the
// lab tests; this one lets the decisions be tested without root.
type fakeLibvirt struct {
	nets       map[string]*libvirtdbus.Network
	created    []string
	destroyed  []string
	failCreate int // fail this many CreateXML calls
}

func (f *fakeLibvirt) List(context.Context, bool) ([]libvirtdbus.Network, error) {
	var out []libvirtdbus.Network
	for _, n := range f.nets {
		out = append(out, *n)
	}
	return out, nil
}

func (f *fakeLibvirt) Lookup(_ context.Context, name string) (libvirtdbus.Network, error) {
	if n, ok := f.nets[name]; ok {
		return *n, nil
	}
	return libvirtdbus.Network{}, errors.New("Network not found")
}

func (f *fakeLibvirt) Destroy(_ context.Context, n libvirtdbus.Network) error {
	f.destroyed = append(f.destroyed, n.Name)
	f.nets[n.Name].Active = false
	f.nets[n.Name].LiveXML = f.nets[n.Name].DefinedXML
	return nil
}

func (f *fakeLibvirt) CreateXML(_ context.Context, xml string) (dbus.ObjectPath, error) {
	if f.failCreate > 0 {
		f.failCreate--
		return "", errors.New("internal error: dnsmasq failed")
	}
	f.created = append(f.created, xml)
	for _, n := range f.nets {
		if strings.Contains(xml, "<name>"+n.Name+"</name>") {
			n.Active, n.LiveXML = true, xml
		}
	}
	return "/x", nil
}

type fakeHost struct {
	view      conflict.HostView
	replugged []string
}

func (h *fakeHost) Read() (conflict.HostView, error) { return h.view, nil }
func (h *fakeHost) Ports() (map[string][]string, error) {
	return map[string][]string{"vbr0": {"vnet0"}}, nil
}
func (h *fakeHost) Replug(bridge string, ports []string) error {
	h.replugged = append(h.replugged, ports...)
	return nil
}

func netXML(policy, v4 string) string {
	meta := ""
	if policy != "" {
		meta = `<metadata><v:policy xmlns:v="urn:x-vnetguard:policy:1" on-conflict="` + policy + `"/></metadata>`
	}
	return `<network><name>n</name>` + meta + `<bridge name="vbr0"/><forward mode="nat"/><ip address="` + v4 + `.1" prefix="24"><dhcp><range start="` + v4 + `.10" end="` + v4 + `.20"/></dhcp></ip></network>`
}

func setup(t *testing.T, policy string) (*Resolver, *fakeLibvirt, *fakeHost, *bytes.Buffer) {
	xml := netXML(policy, "192.168.122")
	lv := &fakeLibvirt{nets: map[string]*libvirtdbus.Network{"n": {Name: "n", Active: true, Persistent: true, LiveXML: xml, DefinedXML: xml}}}
	host := &fakeHost{view: conflict.HostView{Addresses: []conflict.HostAddress{{Prefix: pfx("192.168.122.57/24"), Interface: "wlan0"}}}}
	var logs bytes.Buffer
	r := &Resolver{Libvirt: lv, Host: host, Config: Config{
		DefaultPolicy: "destroy", CacheDir: t.TempDir(), LockDir: t.TempDir(), Direction: conflict.Down,
		Log: slog.New(slog.NewTextHandler(&logs, nil)),
	}}
	return r, lv, host, &logs
}

func TestPassDestroysByDefault(t *testing.T) {
	r, lv, _, _ := setup(t, "")
	out, err := r.Pass(context.Background())
	if err != nil || len(out) != 1 || out[0].Action != "destroy" || len(lv.destroyed) != 1 {
		t.Fatalf("%+v %v %v", out, err, lv.destroyed)
	}
}

func TestPassRenumbersAndReplugs(t *testing.T) {
	r, lv, host, _ := setup(t, "renumber")
	out, _ := r.Pass(context.Background())
	if len(out) != 1 || out[0].Action != "renumber" || out[0].Error != "" {
		t.Fatalf("%+v", out)
	}
	if out[0].Moves[0].To != pfx("192.168.254.0/24") || !strings.Contains(lv.created[0], `address="192.168.254.1"`) {
		t.Fatalf("moved to %v: %s", out[0].Moves, lv.created)
	}
	if len(host.replugged) != 1 || host.replugged[0] != "vnet0" {
		t.Fatalf("ports not re-plugged: %v", host.replugged)
	}
	if lv.nets["n"].DefinedXML != netXML("renumber", "192.168.122") {
		t.Fatal("definition touched")
	}
	// A second pass finds nothing to do.
	if out, _ := r.Pass(context.Background()); len(out) != 0 {
		t.Fatalf("second pass acted: %+v", out)
	}
}

func TestWarnOncePerCause(t *testing.T) {
	r, lv, _, logs := setup(t, "warn")
	for i := 0; i < 3; i++ {
		out, _ := r.Pass(context.Background())
		if len(out) != 1 || out[0].Action != "warn" {
			t.Fatalf("%+v", out)
		}
	}
	if n := strings.Count(logs.String(), "policy is warn"); n != 1 {
		t.Fatalf("warned %d times for one clash", n)
	}
	if len(lv.destroyed)+len(lv.created) != 0 {
		t.Fatal("warn acted")
	}
}

func TestDampingHoldsASecondMoveAndNeverGoesBack(t *testing.T) {
	r, lv, host, _ := setup(t, "renumber")
	r.Config.DampingWindow = time.Hour
	r.Config.Pools = []conflict.Pool{{Prefix: pfx("192.168.120.0/22"), Bits: 24}}
	out, _ := r.Pass(context.Background())
	if len(out) != 1 || out[0].Moves[0].To != pfx("192.168.123.0/24") {
		t.Fatalf("first move: %+v", out)
	}
	first := lv.nets["n"].LiveXML
	// The new subnet clashes too and the old one is free again: within the
	// window nothing moves, and the pass asks to be run when it ends.
	host.view.Addresses = []conflict.HostAddress{{Prefix: pfx("192.168.123.9/24"), Interface: "wlan1"}}
	out, _ = r.Pass(context.Background())
	if len(out) != 1 || out[0].Action != "none" || out[0].RetryIn <= 0 || lv.nets["n"].LiveXML != first {
		t.Fatalf("moved twice inside the window: %+v", out)
	}
	// A user's renumber is not held back, but still never goes back onto
	// the subnet just left (the walk would find 192.168.122.0/24 first).
	o := r.Renumber(context.Background(), "n", []netip.Prefix{})
	if o.Error != "" || len(o.Moves) != 1 || o.Moves[0].To != pfx("192.168.121.0/24") {
		t.Fatalf("%+v", o)
	}
}

func TestFailedRestartRestoresTheOldNetwork(t *testing.T) {
	r, lv, _, _ := setup(t, "renumber")
	lv.failCreate = 1
	out, _ := r.Pass(context.Background())
	if len(out) != 1 || !strings.Contains(out[0].Error, "old network restored") {
		t.Fatalf("%+v", out)
	}
	if !lv.nets["n"].Active || !strings.Contains(lv.nets["n"].LiveXML, "192.168.122.1") {
		t.Fatalf("network left down or changed: %+v", lv.nets["n"])
	}
}

func TestInvalidLiveXMLIsLeftAlone(t *testing.T) {
	r, lv, _, _ := setup(t, "renumber")
	lv.nets["n"].LiveXML = `<network><name>n</name><ip address="192.168.122.1" prefix="24" netmask="255.255.255.0"/></network>`
	out, _ := r.Pass(context.Background())
	if len(out) != 1 || out[0].Error == "" || len(lv.destroyed)+len(lv.created) != 0 {
		t.Fatalf("acted on a doubtful definition: %+v", out)
	}
}

func TestDryRunChangesNothing(t *testing.T) {
	r, lv, _, _ := setup(t, "renumber")
	r.Config.DryRun = true
	out, _ := r.Pass(context.Background())
	if len(out) != 1 || out[0].Action != "renumber" || len(out[0].Moves) != 1 || len(lv.created)+len(lv.destroyed) != 0 {
		t.Fatalf("%+v", out)
	}
}

package guard

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vnetguard/vnetguard/conflict"
	"github.com/vnetguard/vnetguard/netdef"
	"github.com/vnetguard/vnetguard/nmhook/state"
)

// memBackend keeps networks in memory: it lets the guard's orchestration
// (locks, recovery first, memory, outcomes) be tested without root. The
// real backend is exercised by the lab tests.
type memBackend struct {
	nets         map[string]*Network
	renumbers    []string
	destroys     []string
	pending      []string
	recovered    []string
	failRecover  error
	recoverMoves []Move // what Recover reports it carried through
}

func (m *memBackend) Name() string { return "mem" }
func (m *memBackend) Networks(context.Context, bool) ([]Network, error) {
	var out []Network
	for _, n := range m.nets {
		out = append(out, *n)
	}
	return out, nil
}
func (m *memBackend) Network(_ context.Context, name string) (Network, error) {
	if n, ok := m.nets[name]; ok {
		return *n, nil
	}
	return Network{}, ErrNotFound
}
func (m *memBackend) Renumber(_ context.Context, n Network, xml []byte) error {
	d, err := netdef.Parse(xml)
	if err != nil {
		return err
	}
	m.renumbers = append(m.renumbers, n.Name)
	m.nets[n.Name].Live = d
	return nil
}
func (m *memBackend) Destroy(_ context.Context, n Network) error {
	m.destroys = append(m.destroys, n.Name)
	m.nets[n.Name].Active = false
	return nil
}
func (m *memBackend) Pending() ([]string, error) { return m.pending, nil }
func (m *memBackend) Recover(_ context.Context, name string) (Recovered, error) {
	if m.failRecover != nil {
		return Recovered{}, m.failRecover
	}
	m.recovered = append(m.recovered, name)
	m.pending = nil
	return Recovered{Note: "done", Moves: m.recoverMoves}, nil
}
func (m *memBackend) Close() error { return nil }

type memHost struct{ view conflict.HostView }

func (h memHost) Read(func(netip.Prefix) bool) (conflict.HostView, map[string][]string, error) {
	return h.view, nil, nil
}

func network(t *testing.T, name, bridge, subnet, policy string) *Network {
	t.Helper()
	meta := ""
	if policy != "" {
		meta = fmt.Sprintf(`<metadata><vnetguard:policy xmlns:vnetguard="urn:x-vnetguard:policy:1" on-conflict="%s"/></metadata>`, policy)
	}
	p := netip.MustParsePrefix(subnet)
	xml := fmt.Sprintf(`<network><name>%s</name>%s<bridge name='%s'/><ip address='%s' prefix='%d'/></network>`,
		name, meta, bridge, p.Addr(), p.Bits())
	d, err := netdef.Parse([]byte(xml))
	if err != nil {
		t.Fatal(err)
	}
	return &Network{Backend: "mem", Name: name, Active: true, Live: d, Defined: d}
}

func lan(subnet string) conflict.HostView {
	return conflict.HostView{Routes: []conflict.HostRoute{{Dst: netip.MustParsePrefix(subnet), Interface: "wlan0", Table: 254}}}
}

func newTestGuard(t *testing.T, b *memBackend, view conflict.HostView) (*Guard, *bytes.Buffer) {
	var logs bytes.Buffer
	dir := t.TempDir()
	os.Chmod(dir, 0o700)
	g := New(Settings{CacheDir: dir, LockDir: dir, DefaultPolicy: netdef.Destroy},
		memHost{view}, slog.New(slog.NewTextHandler(&logs, nil)), b)
	return g, &logs
}

func TestPassRenumbersRecordsAndRemembers(t *testing.T) {
	b := &memBackend{nets: map[string]*Network{"default": network(t, "default", "virbr0", "192.168.122.1/24", "renumber")}}
	g, logs := newTestGuard(t, b, lan("192.168.122.0/24"))
	out, err := g.Pass(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 1 || out[0].Action != "renumber" || out[0].Error != "" || len(b.renumbers) != 1 {
		t.Fatalf("outcomes %+v, renumbers %v", out, b.renumbers)
	}
	to := out[0].Moves[0].To
	if got := b.nets["default"].Live.Network.Subnets()[0].Masked(); got != to {
		t.Fatalf("backend got %v, plan said %v", got, to)
	}
	mem, err := state.LoadMemory(g.Settings().CacheDir)
	if err != nil || mem.Networks["default"].LastAction.Action != "renumber" {
		t.Fatalf("memory: %+v, %v", mem, err)
	}
	if r := mem.Remembered("default", netip.MustParsePrefix("192.168.122.0/24")); len(r) != 1 || r[0] != to {
		t.Fatalf("remembered %v, want [%v]", r, to)
	}
	if !strings.Contains(logs.String(), "renumbered virtual network clashing with the host") {
		t.Fatalf("log: %s", logs)
	}
	if !g.Own("virbr0") {
		t.Error("the network's bridge is not known as its own")
	}
	// The clash is gone: a second pass does nothing.
	if out, _ := g.Pass(t.Context()); len(out) != 0 {
		t.Fatalf("second pass: %+v", out)
	}
}

func TestPassFinishesInterruptedChangesFirst(t *testing.T) {
	b := &memBackend{nets: map[string]*Network{}, pending: []string{"default"}}
	g, _ := newTestGuard(t, b, conflict.HostView{})
	out, err := g.Pass(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(b.recovered) != 1 || len(out) != 1 || out[0].Action != "recover" {
		t.Fatalf("recovered %v, outcomes %+v", b.recovered, out)
	}
}

func TestUnreadableNetworkDoesNotBlockTheOthers(t *testing.T) {
	bad := network(t, "bad", "virbr9", "192.168.122.1/24", "renumber")
	bad.Err = errors.New("XML unreadable")
	b := &memBackend{nets: map[string]*Network{
		"bad":  bad,
		"good": network(t, "good", "virbr1", "10.5.0.1/24", ""),
	}}
	g, _ := newTestGuard(t, b, lan("10.5.0.0/16"))
	out, err := g.Pass(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var sawBad, sawGood bool
	for _, o := range out {
		sawBad = sawBad || (o.Network == "bad" && o.Error != "" && o.Action == "none")
		sawGood = sawGood || (o.Network == "good" && o.Action == "destroy")
	}
	if !sawBad || !sawGood || len(b.destroys) != 1 || b.destroys[0] != "good" {
		t.Fatalf("outcomes %+v, destroys %v", out, b.destroys)
	}
}

func TestDryRunChangesNothing(t *testing.T) {
	b := &memBackend{nets: map[string]*Network{"default": network(t, "default", "virbr0", "192.168.122.1/24", "renumber")}}
	g, _ := newTestGuard(t, b, lan("192.168.122.0/24"))
	set := g.Settings()
	set.DryRun = true
	g.SetSettings(set)
	out, err := g.Pass(t.Context())
	if err != nil || len(out) != 1 || out[0].Action != "renumber" || !out[0].DryRun || len(b.renumbers) != 0 {
		t.Fatalf("outcomes %+v, %v, renumbers %v", out, err, b.renumbers)
	}
}

func TestUserRenumberWithoutClashIsANoOp(t *testing.T) {
	b := &memBackend{nets: map[string]*Network{"n": network(t, "n", "virbr0", "10.99.0.1/24", "")}}
	g, logs := newTestGuard(t, b, conflict.HostView{})
	out := g.Renumber(t.Context(), "n", UserRenumber{})
	if out.Action != "none" || out.Error != "" || len(b.renumbers) != 0 || strings.Contains(logs.String(), "clashing") {
		t.Fatalf("outcome %+v, renumbers %v, log %s", out, b.renumbers, logs)
	}
	out = g.Renumber(t.Context(), "n", UserRenumber{Force: true})
	if out.Action != "renumber" || len(b.renumbers) != 1 || !strings.Contains(logs.String(), "renumbered virtual network as asked") {
		t.Fatalf("--force: outcome %+v, log %s", out, logs)
	}
	if out := g.Renumber(t.Context(), "nosuch", UserRenumber{}); out.Error == "" {
		t.Fatal("no error for a missing network")
	}
}

func TestThreatensFromTheLastRead(t *testing.T) {
	b := &memBackend{nets: map[string]*Network{"default": network(t, "default", "virbr0", "192.168.122.1/24", "renumber")}}
	g, _ := newTestGuard(t, b, conflict.HostView{})
	p := netip.MustParsePrefix
	if g.Threatens(p("192.168.122.7/24"), "wlan0") {
		t.Fatal("threat reported before any read")
	}
	if _, err := g.Pass(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		prefix, ifname string
		want           bool
	}{
		{"192.168.122.7/24", "wlan0", true},   // creates a clash
		{"192.168.0.0/16", "tun0", true},      // a wider route over it
		{"192.168.122.1/24", "virbr0", false}, // the network's own bridge
		{"10.1.0.0/16", "wlan0", false},       // elsewhere
		{"0.0.0.0/0", "wlan0", false},         // a default route is no clash
		{"192.168.122.200/32", "", true},      // interface unknown: count it
	} {
		if got := g.Threatens(p(tc.prefix), tc.ifname); got != tc.want {
			t.Errorf("Threatens(%s, %q) = %v, want %v", tc.prefix, tc.ifname, got, tc.want)
		}
	}
}

// A network with an unfinished change is never acted on before that change
// is finished: a new intent would lose what the old one must put back.
func TestActFinishesAPendingChangeFirstOrRefuses(t *testing.T) {
	b := &memBackend{nets: map[string]*Network{"default": network(t, "default", "virbr0", "192.168.122.1/24", "renumber")},
		failRecover: errors.New("libvirtd frozen")}
	g, _ := newTestGuard(t, b, lan("192.168.122.0/24"))
	b.pending = []string{"default"}
	out := g.Renumber(t.Context(), "default", UserRenumber{Force: true})
	if out.Error == "" || !strings.Contains(out.Error, "unfinished change") || len(b.renumbers) != 0 {
		t.Fatalf("acted over a pending change: %+v, renumbers %v", out, b.renumbers)
	}
	b.failRecover = nil
	b.pending = []string{"default"}
	out = g.Renumber(t.Context(), "default", UserRenumber{Force: true})
	if out.Error != "" || len(b.recovered) == 0 || len(b.renumbers) != 1 {
		t.Fatalf("after recovery: %+v, recovered %v, renumbers %v", out, b.recovered, b.renumbers)
	}
}

// A proxy-NDP network shares its /64 with its uplink on purpose: the
// uplink's address and on-link route there are neither a clash nor a
// threat; the same /64 anywhere else is both.
func TestProxyNDPSharesItsUplinksSubnet(t *testing.T) {
	d, err := netdef.Parse([]byte(`<network><name>pub</name>
<metadata><vnetguard:proxy-ndp xmlns:vnetguard="urn:x-vnetguard:policy:1"/><vnetguard:policy xmlns:vnetguard="urn:x-vnetguard:policy:1" on-conflict="renumber"/></metadata>
<forward mode='route' dev='eth0'/><bridge name='vbrpub'/><ip family='ipv6' address='2001:db8:1::2' prefix='64'/></network>`))
	if err != nil {
		t.Fatal(err)
	}
	if probs := d.Validate(); len(probs) > 0 {
		t.Fatal(probs)
	}
	p := netip.MustParsePrefix
	view := conflict.HostView{
		Addresses: []conflict.HostAddress{{Prefix: p("2001:db8:1::10/64"), Interface: "eth0", Scope: "global"}},
		Routes:    []conflict.HostRoute{{Dst: p("2001:db8:1::/64"), Interface: "eth0", Table: 254}},
	}
	b := &memBackend{nets: map[string]*Network{"pub": {Backend: "mem", Name: "pub", Active: true, Live: d, Defined: d}}}
	g, _ := newTestGuard(t, b, view)
	out, err := g.Pass(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range out {
		if o.Action != "none" {
			t.Fatalf("acted on the shared /64: %+v", o)
		}
	}
	if len(b.renumbers) != 0 {
		t.Fatalf("renumbered: %v", b.renumbers)
	}
	if g.Threatens(p("2001:db8:1::/64"), "eth0") {
		t.Error("the uplink's own /64 counted as a threat")
	}
	if !g.Threatens(p("2001:db8:1::/64"), "wg0") {
		t.Error("the /64 on another interface not counted as a threat")
	}
}

// A renumber that recovery carried through (the run that began it was
// killed) is remembered like one the guard made: where the defined subnet
// went, and the action, so damping holds a second move back.
func TestRecoveredRenumberIsRemembered(t *testing.T) {
	b := &memBackend{nets: map[string]*Network{"default": network(t, "default", "virbr0", "192.168.121.1/24", "renumber")}}
	defined := network(t, "default", "virbr0", "192.168.122.1/24", "renumber")
	b.nets["default"].Defined = defined.Defined
	b.pending = []string{"default"}
	b.recoverMoves = []Move{{From: netip.MustParsePrefix("192.168.122.0/24"), To: netip.MustParsePrefix("192.168.121.0/24")}}
	g, _ := newTestGuard(t, b, conflict.HostView{})
	set := g.Settings()
	set.DampingWindow = 10 * time.Second
	g.SetSettings(set)
	g.Recover(t.Context())
	mem, err := state.LoadMemory(g.Settings().CacheDir)
	if err != nil {
		t.Fatal(err)
	}
	if got := mem.Remembered("default", netip.MustParsePrefix("192.168.122.0/24")); len(got) == 0 || got[0] != netip.MustParsePrefix("192.168.121.0/24") {
		t.Fatalf("remembered %v, want 192.168.121.0/24 for the defined 192.168.122.0/24", got)
	}
	a := mem.Networks["default"].LastAction
	if a == nil || a.Action != "renumber" || len(a.Left) != 1 || a.Left[0] != netip.MustParsePrefix("192.168.122.0/24") {
		t.Fatalf("last action %+v", a)
	}
	// The new subnet now clashes too: damping holds the second move back.
	g.Host = memHost{lan("192.168.121.0/24")}
	out, err := g.Pass(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(b.renumbers) != 0 || len(out) != 1 || out[0].RetryIn == 0 {
		t.Fatalf("moved again within the damping window: renumbers %v, outcomes %+v", b.renumbers, out)
	}
}

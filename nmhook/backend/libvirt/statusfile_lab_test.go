//go:build lab

package libvirt

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/vnetguard/vnetguard/netdef/libvirt/rpc"
	"github.com/vnetguard/vnetguard/scripts/labkit"
)

// The hook's fast path (libvirt's status files) and the RPC listing see the
// same running networks, with the same bridges and subnets, on 50 networks
// of which some are stopped.
func TestStatusFilesAgreeWithRPC(t *testing.T) {
	labkit.Require(t)
	const n = 50
	dir := t.TempDir()
	for i := range n {
		name := fmt.Sprintf("sf%02d", i)
		xml := fmt.Sprintf("<network><name>%s</name><bridge name='vbr-sf%02d'/><ip address='10.88.%d.1' prefix='24'/><ip family='ipv6' address='fd42:88:%x::1' prefix='64'/></network>", name, i, i, i)
		f := filepath.Join(dir, name+".xml")
		if err := os.WriteFile(f, []byte(xml), 0o644); err != nil {
			t.Fatal(err)
		}
		labkit.Run(t, "virsh", "-q", "net-define", f)
		t.Cleanup(func() {
			exec.Command("virsh", "-q", "net-destroy", name).Run()
			exec.Command("virsh", "-q", "net-undefine", name).Run()
		})
		if i%5 != 0 { // every fifth stays stopped
			labkit.Run(t, "virsh", "-q", "net-start", name)
		}
	}
	files, err := readStatusFiles(StatusDir)
	if err != nil {
		t.Fatalf("status files: %v", err)
	}
	ctx := t.Context()
	conn, err := rpc.Dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	all, err := conn.Networks(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	type seen struct{ bridge, subnets string }
	summarize := func(nets []rpc.Network, activeOnly bool) map[string]seen {
		m := map[string]seen{}
		for _, rn := range nets {
			if activeOnly && !rn.Active {
				continue
			}
			bn := convert(rn)
			if bn.Err != nil {
				t.Fatalf("%s: %v", rn.Name, bn.Err)
			}
			m[rn.Name] = seen{bn.Live.Network.BridgeName(), fmt.Sprint(bn.Live.Network.Subnets())}
		}
		return m
	}
	fromFiles, fromRPC := summarize(files, false), summarize(all, true)
	if len(fromFiles) < n*4/5 {
		t.Fatalf("status files list %d networks, want at least %d", len(fromFiles), n*4/5)
	}
	for name, s := range fromRPC {
		if fromFiles[name] != s {
			t.Errorf("%s: RPC says %+v, status file %+v", name, s, fromFiles[name])
		}
	}
	for name := range fromFiles {
		if _, ok := fromRPC[name]; !ok {
			t.Errorf("%s: in the status files but not running per RPC", name)
		}
	}
	// The backend's light read takes the fast path and gives the same.
	b := New(t.TempDir(), nil)
	defer b.Close()
	start := time.Now()
	light, err := b.Networks(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("light read of %d running networks from status files: %v", len(light), time.Since(start))
	var names []string
	for _, l := range light {
		names = append(names, l.Name)
	}
	want := slices.Sorted(func(yield func(string) bool) {
		for k := range fromRPC {
			if !yield(k) {
				return
			}
		}
	})
	slices.Sort(names)
	if !slices.Equal(names, want) {
		t.Fatalf("light read %v, want %v", names, want)
	}
	// Every file libvirt wrote takes the quick reader, whose model is the
	// general parser's (the default network too, when the lab has it).
	for _, f := range files {
		raw, err := os.ReadFile(filepath.Join(StatusDir, f.Name+".xml"))
		if err != nil {
			t.Fatal(err)
		}
		d, ok := quickStatus(raw, f.Name)
		if !ok {
			t.Errorf("%s: the quick reader refused libvirt's own status file:\n%s", f.Name, raw)
			continue
		}
		if g := convert(f); g.Err != nil || !reflect.DeepEqual(d.Network, g.Live.Network) {
			t.Errorf("%s: quick model %+v, general %+v (%v)", f.Name, d.Network, g.Live, g.Err)
		}
	}
}

//go:build lab

package e2e

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vnetguard/vnetguard/netdef"
	"github.com/vnetguard/vnetguard/scripts/labkit"
)

// One network vnetguard cannot read must not leave the others unguarded:
// a readable network that clashes (policy renumber) still moves, and the
// unreadable one is named with its error and left alone, since nothing
// says what to do with it.

// libvirt keeps <metadata> verbatim but indents it when it formats a
// network's XML: 80,000 empty elements 240 levels deep (480 KB defined)
// come out as 5.4 MB, past the 4 MiB a string may have in libvirt's RPC.
// libvirt 9.0 defines and starts such a network, and then every
// virNetworkGetXMLDesc of it fails: "Unable to encode message payload"
// (virsh net-dumpxml too). That failure made every pass exit 2.
func TestUnreadableXMLDoesNotBlockTheOthers(t *testing.T) {
	labkit.Require(t)
	const depth, leaves = 240, 80_000
	meta := "<metadata><x:a xmlns:x='urn:x-unreadable'>" + strings.Repeat("<x:a>", depth-1) +
		strings.Repeat("<x:b/>", leaves) + strings.Repeat("</x:a>", depth) + "</metadata>"
	bad := "uh"
	defineXML(t, bad, fmt.Sprintf("<network><name>%s</name>%s<forward mode='nat'/><bridge name='vbr-%s'/>"+
		"<ip address='192.168.188.1' netmask='255.255.255.0'/></network>", bad, meta, bad))
	if _, err := labkit.Try("virsh", "-q", "-c", "qemu:///system", "net-dumpxml", bad); err == nil {
		t.Fatal("libvirt returned the XML after all: this test needs a network whose XML it cannot return")
	}
	good := netSpec{name: "uhg", bridge: "vbr-uhg", v4: "192.168.185", policy: "renumber"}
	defineNetwork(t, good)
	clashingUplink(t, "up-uh", "192.168.185.50/24")

	r := vnetguard(t, nil, newDirs(t).flags("resolve")...)
	wantNamed(t, r, bad)
	if p := liveIPv4(t, good.name); p.Overlaps(netip.MustParsePrefix("192.168.185.0/24")) {
		t.Errorf("the readable network %s is still on %s (resolve exit %d)", good.name, p, r.code)
	}
	if info := virsh(t, "net-info", bad); !strings.Contains(info, "Active:         yes") {
		t.Errorf("the unreadable network was stopped:\n%s", info)
	}
}

// libvirt takes a vnetguard policy that names no policy
// (on-conflict="sometimes"); vnetguard's validator refuses it. Both
// networks clash.
func TestUnreadableInvalidDefinitionDoesNotBlockTheOthers(t *testing.T) {
	labkit.Require(t)
	bad := netSpec{name: "ub", bridge: "vbr-ub", v4: "192.168.187", policy: "sometimes"}
	good := netSpec{name: "ug", bridge: "vbr-ug", v4: "192.168.186", policy: "renumber"}
	defineNetwork(t, bad)
	defineNetwork(t, good)
	badXML := virsh(t, "net-dumpxml", bad.name)
	if !strings.Contains(badXML, `on-conflict="sometimes"`) {
		t.Fatalf("libvirt did not keep the policy as written:\n%s", badXML)
	}
	if r := vnetguard(t, nil, "validate", writeTemp(t, badXML)); r.code != 1 || !strings.Contains(r.stderr, "on-conflict") {
		t.Fatalf("validate should refuse the policy: exit %d", r.code)
	}
	clashingUplink(t, "up-ub", "192.168.186.50/24")
	labkit.Run(t, "ip", "addr", "add", "192.168.187.50/24", "dev", "up-ub")

	r := vnetguard(t, nil, newDirs(t).flags("resolve")...)
	wantNamed(t, r, bad.name)
	if p := liveIPv4(t, good.name); p.Overlaps(netip.MustParsePrefix("192.168.186.0/24")) {
		t.Errorf("the readable network %s is still on %s (resolve exit %d)", good.name, p, r.code)
	}
	if p := liveIPv4(t, bad.name); p != netip.MustParsePrefix("192.168.187.0/24") {
		t.Errorf("the unreadable network %s was moved to %s", bad.name, p)
	}
}

// defineXML defines and starts a libvirt network from raw XML, and
// removes it when the test ends.
func defineXML(t *testing.T, name, xml string) {
	t.Helper()
	f := filepath.Join(t.TempDir(), name+".xml")
	if err := os.WriteFile(f, []byte(xml), 0o644); err != nil {
		t.Fatal(err)
	}
	virsh(t, "net-define", f)
	t.Cleanup(func() {
		exec.Command("virsh", "-c", "qemu:///system", "net-destroy", name).Run()
		exec.Command("virsh", "-c", "qemu:///system", "net-undefine", name).Run()
	})
	virsh(t, "net-start", name)
}

// wantNamed: the run's output names the unreadable network (with its
// error; the exit status is the CLI's business).
func wantNamed(t *testing.T, r result, name string) {
	t.Helper()
	if !strings.Contains(r.stdout+r.stderr, name) {
		t.Errorf("resolve (exit %d) does not name the unreadable network %s:\n%s%s", r.code, name, r.stdout, r.stderr)
	}
}

// liveIPv4 is the IPv4 subnet of the network's live XML, as virsh shows
// it (status would not show an unreadable network's).
func liveIPv4(t *testing.T, name string) netip.Prefix {
	t.Helper()
	d, err := netdef.Parse([]byte(virsh(t, "net-dumpxml", name)))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range d.Network.Subnets() {
		if p.Addr().Is4() {
			return p.Masked()
		}
	}
	t.Fatalf("no IPv4 subnet in the live XML of %s", name)
	return netip.Prefix{}
}

package profiles

import (
	"bytes"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"

	"github.com/vnetguard/vnetguard/netdef"
)

// HasRadvd tells whether an <ip> carries the <radvd/> marker: its router
// advertisements come from a radvd vnetguard runs, not from NetworkManager.
func HasRadvd(ip netdef.IP) bool {
	for _, e := range ip.Extra {
		if e.XMLName.Local == "radvd" {
			return true
		}
	}
	return false
}

// RadvdPrefixes are the IPv6 subnets of a network that radvd advertises.
func RadvdPrefixes(d *netdef.Definition) []netip.Prefix {
	var out []netip.Prefix
	for _, ip := range d.Network.IPs {
		if p, err := ip.Subnet(); err == nil && p.Addr().Is6() && HasRadvd(ip) {
			out = append(out, p.Masked())
		}
	}
	return out
}

// RadvdConfig is radvd's configuration for a network: its bridge sends
// router advertisements for the prefixes, for SLAAC. A routed or NAT
// network advertises itself as a default router; an isolated one does not
// (AdvDefaultLifetime 0).
func RadvdConfig(d *netdef.Definition) []byte {
	ps := RadvdPrefixes(d)
	if len(ps) == 0 {
		return nil
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "# written by vnetguard for network %s; rewritten on every change\ninterface %s {\n", d.Network.Name, d.Network.BridgeName())
	b.WriteString("\tAdvSendAdvert on;\n\tMinRtrAdvInterval 3;\n\tMaxRtrAdvInterval 10;\n")
	if m := d.Network.ForwardMode(); m == "" {
		b.WriteString("\tAdvDefaultLifetime 0;\n")
	}
	for _, p := range ps {
		fmt.Fprintf(&b, "\tprefix %s {\n\t\tAdvOnLink on;\n\t\tAdvAutonomous on;\n\t};\n", p)
	}
	b.WriteString("};\n")
	return b.Bytes()
}

// Radvd runs one radvd per running network that asks for it, each with
// its configuration, pid file and log in Dir (/run/vnetguard/radvd).
type Radvd struct {
	Dir  string
	Path string // the radvd binary; "" means /usr/sbin/radvd
}

func (r Radvd) sidecar() sidecar {
	return sidecar{dir: r.Dir, hupReloads: true, start: func(name, conf, pid, log string) error {
		bin := r.Path
		if bin == "" {
			bin = "/usr/sbin/radvd"
		}
		// radvd checks its configuration first, exits non-zero on an
		// error, and forks into the background.
		out, err := exec.Command(bin, "-C", conf, "-p", pid, "-m", "logfile", "-l", log).CombinedOutput()
		if err != nil {
			return fmt.Errorf("start radvd for network %s: %w: %s", name, err, strings.TrimSpace(string(out)))
		}
		return nil
	}}
}

// Sync makes the radvds match nets: a new configuration is written and
// its radvd started, or kicked (SIGHUP) when its configuration changed; a
// network that no longer runs (or no longer asks for radvd) has its radvd
// stopped and its files removed.
func (r Radvd) Sync(nets []*netdef.Definition) error {
	want := map[string][]byte{}
	for _, d := range nets {
		if c := RadvdConfig(d); c != nil {
			want[d.Network.Name] = c
		}
	}
	return r.sidecar().sync(want)
}

// Kick sends SIGHUP to every running radvd: an interface appeared or
// changed, and radvd re-reads its configuration and the interface.
func (r Radvd) Kick(nets []*netdef.Definition) {
	names := make([]string, len(nets))
	for i, d := range nets {
		names[i] = d.Network.Name
	}
	r.sidecar().kick(names)
}

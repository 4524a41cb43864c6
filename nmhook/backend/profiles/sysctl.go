package profiles

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/vnetguard/vnetguard/netdef"
)

// ForwardingSysctls are the sysctls (relative to /proc/sys) a network
// needs set to 1 before it starts: forwarding of each family it has, for
// nat, route and open networks. NetworkManager's shared mode turns IPv4
// forwarding on by itself, but a routed network without DHCP uses the
// manual method, which does not. Forwarding is never turned off again:
// other networks (libvirt's, containers') rely on it too, as libvirt
// leaves it on.
func ForwardingSysctls(d *netdef.Definition) []string {
	switch d.Network.ForwardMode() {
	case "nat", "route", "open":
	default:
		return nil
	}
	var v4, v6 bool
	for _, s := range d.Network.Subnets() {
		v4 = v4 || s.Addr().Is4()
		v6 = v6 || s.Addr().Is6()
	}
	var out []string
	if v4 {
		out = append(out, "net/ipv4/ip_forward")
	}
	if v6 {
		out = append(out, "net/ipv6/conf/all/forwarding")
	}
	return out
}

// EnsureForwarding sets the network's ForwardingSysctls to 1 under dir
// ("" for /proc/sys), writing only those that are not 1 already.
func EnsureForwarding(d *netdef.Definition, dir string) error {
	_, err := ensureForwarding(d, dir)
	return err
}

// ensureForwarding is EnsureForwarding that also names the sysctls it had
// to turn on (net.ipv4.ip_forward, ...).
func ensureForwarding(d *netdef.Definition, dir string) ([]string, error) {
	if dir == "" {
		dir = "/proc/sys"
	}
	var turned []string
	for _, k := range ForwardingSysctls(d) {
		p := filepath.Join(dir, k)
		if v, err := os.ReadFile(p); err == nil && strings.TrimSpace(string(v)) == "1" {
			continue
		}
		name := strings.ReplaceAll(k, "/", ".")
		if err := os.WriteFile(p, []byte("1\n"), 0o644); err != nil {
			return turned, fmt.Errorf("turn forwarding on (%s): %w", name, err)
		}
		turned = append(turned, name)
	}
	return turned, nil
}

// quietPhysicalPorts sets accept_ra=0 on the ports of a bridge that are
// physical interfaces (those with a device behind them in sysfs; a guest's
// tap or veth has none): a bridge port must not autoconfigure itself from
// the router advertisements it carries. It names the ports it changed.
func quietPhysicalPorts(ports []string, netClassDir, sysctlDir string) ([]string, error) {
	if netClassDir == "" {
		netClassDir = "/sys/class/net"
	}
	if sysctlDir == "" {
		sysctlDir = "/proc/sys"
	}
	var changed []string
	var errs []error
	for _, port := range ports {
		if _, err := os.Stat(filepath.Join(netClassDir, port, "device")); err != nil {
			continue // virtual: a guest's end
		}
		f := filepath.Join(sysctlDir, "net/ipv6/conf", port, "accept_ra")
		v, err := os.ReadFile(f)
		if err != nil || strings.TrimSpace(string(v)) == "0" {
			continue // no IPv6 on it, or quiet already
		}
		if err := os.WriteFile(f, []byte("0\n"), 0o644); err != nil {
			errs = append(errs, fmt.Errorf("accept_ra=0 on %s: %w", port, err))
			continue
		}
		changed = append(changed, port)
	}
	return changed, errors.Join(errs...)
}

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
	var turned []string
	for _, k := range ForwardingSysctls(d) {
		name := strings.ReplaceAll(k, "/", ".")
		changed, err := setSysctl(dir, k, "1")
		if err != nil {
			return turned, fmt.Errorf("turn forwarding on (%s): %w", name, err)
		}
		if changed {
			turned = append(turned, name)
		}
	}
	return turned, nil
}

// readSysctl reads key (relative to dir, "" for /proc/sys), trimmed; ""
// when it cannot be read.
func readSysctl(dir, key string) string {
	if dir == "" {
		dir = "/proc/sys"
	}
	v, _ := os.ReadFile(filepath.Join(dir, key))
	return strings.TrimSpace(string(v))
}

// setSysctl sets key (relative to dir, "" for /proc/sys) to want, writing
// only when it holds something else; changed says whether it wrote.
func setSysctl(dir, key, want string) (changed bool, err error) {
	if readSysctl(dir, key) == want {
		return false, nil
	}
	if dir == "" {
		dir = "/proc/sys"
	}
	if err := os.WriteFile(filepath.Join(dir, key), []byte(want+"\n"), 0o644); err != nil {
		return false, err
	}
	return true, nil
}

// acceptRA is a device's accept_ra sysctl key.
func acceptRA(dev string) string { return filepath.Join("net/ipv6/conf", dev, "accept_ra") }

// quietPhysicalPorts sets accept_ra=0 on the ports of a bridge that are
// physical interfaces (those with a device behind them in sysfs; a guest's
// tap or veth has none): a bridge port must not autoconfigure itself from
// the router advertisements it carries. It names the ports it changed.
func quietPhysicalPorts(ports []string, netClassDir, sysctlDir string) ([]string, error) {
	if netClassDir == "" {
		netClassDir = "/sys/class/net"
	}
	var changed []string
	var errs []error
	for _, port := range ports {
		if _, err := os.Stat(filepath.Join(netClassDir, port, "device")); err != nil {
			continue // virtual: a guest's end
		}
		if readSysctl(sysctlDir, acceptRA(port)) == "" {
			continue // no IPv6 on it
		}
		turned, err := setSysctl(sysctlDir, acceptRA(port), "0")
		if err != nil {
			errs = append(errs, fmt.Errorf("accept_ra=0 on %s: %w", port, err))
		} else if turned {
			changed = append(changed, port)
		}
	}
	return changed, errors.Join(errs...)
}

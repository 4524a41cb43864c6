package profiles

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/vnetguard/vnetguard/netdef"
)

// ownDHCPReason says why a network needs a dnsmasq of vnetguard's own
// rather than NetworkManager's shared mode, in words for `net list`; ""
// when shared mode (or nothing) will do. NetworkManager 1.42's shared mode
// serves one fixed IPv4 range from the profile's first address and nothing
// else; libvirt's format asks for more. A routed network's DHCP goes to
// vnetguard's dnsmasq too: shared mode's own nftables table would reject
// connections opened from outside towards the guests.
func ownDHCPReason(d *netdef.Definition) (string, error) {
	n := &d.Network
	fail := func(elem, rule string) (string, error) {
		return "", netdef.Problem{File: d.Path, Element: elem, Line: d.Line(elem), Rule: rule}
	}
	if n.DNS != nil {
		if len(n.DNS.TXTs) > 0 {
			return fail("network/dns[0]/txt[0]", "DNS TXT records are not supported by vnetguard's own networks")
		}
		if len(n.DNS.SRVs) > 0 {
			return fail("network/dns[0]/srv[0]", "DNS SRV records are not supported by vnetguard's own networks")
		}
	}
	var why []string
	add := func(s string) {
		for _, w := range why {
			if w == s {
				return
			}
		}
		why = append(why, s)
	}
	dhcp4 := 0
	for i, ip := range n.IPs {
		if ip.TFTP != nil {
			return fail(fmt.Sprintf("network/ip[%d]/tftp[0]", i), "TFTP is not supported by vnetguard's own networks")
		}
		if ip.DHCP == nil {
			continue
		}
		pre, err := ip.Subnet()
		if err != nil {
			continue // FromDefinition reports it
		}
		if pre.Addr().Is6() {
			add("DHCPv6")
		} else {
			dhcp4++
		}
		if len(ip.DHCP.Hosts) > 0 {
			add("DHCP hosts")
		}
		if len(ip.DHCP.Ranges) > 1 {
			add("several DHCP ranges")
		}
		if ip.DHCP.Bootp != nil {
			add("bootp")
		}
	}
	if dhcp4 > 1 {
		add("DHCP on several IPv4 addresses")
	}
	if dhcp4 > 0 {
		switch n.ForwardMode() {
		case "route", "open":
			add("a routed network's DHCP (shared mode would block connections from outside)")
		}
	}
	if n.DNS != nil && (len(n.DNS.Hosts) > 0 || len(n.DNS.Forwarders) > 0) {
		add("DNS hosts or forwarders")
	}
	if n.Domain != nil && n.Domain.Name != "" {
		add("a DNS domain")
	}
	return strings.Join(why, ", "), nil
}

// safeConfValue: what may go into a dnsmasq configuration line from a
// definition. Addresses, MACs, DUIDs, host and domain names fit; a comma,
// a space or a line break (which could add options) does not.
var safeConfValue = regexp.MustCompile(`^[A-Za-z0-9._:-]+$`)

// DnsmasqFiles are where a network's dnsmasq keeps its pid, leases and log.
type DnsmasqFiles struct {
	Pid, Leases, Log string
}

// DnsmasqConfig is the configuration of vnetguard's dnsmasq for a network
// whose profile says DHCP "dnsmasq": DHCPv4 and DHCPv6 ranges and hosts,
// DNS for the network (hosts, forwarders, domain) unless <dns
// enable='no'/>, and, when the profile says RA "dnsmasq", router
// advertisements (the managed flag for DHCPv6 ranges, SLAAC for the
// prefixes without DHCP). It binds to the bridge alone (bind-dynamic:
// the bridge may appear after dnsmasq starts). nil when the network needs
// no dnsmasq of its own.
func DnsmasqConfig(d *netdef.Definition, f DnsmasqFiles) ([]byte, error) {
	p, err := FromDefinition(d, false)
	if err != nil || p.DHCP != "dnsmasq" {
		return nil, err
	}
	n := &d.Network
	var b bytes.Buffer
	var bad error
	check := func(elem string, vals ...string) {
		for _, a := range vals {
			if !safeConfValue.MatchString(a) && bad == nil {
				bad = netdef.Problem{File: d.Path, Element: elem, Line: d.Line(elem), Rule: fmt.Sprintf("%q cannot be passed to dnsmasq (letters, digits, '.', ':', '-' and '_' only)", a)}
			}
		}
	}
	// line writes an option line whose values are checked first.
	line := func(elem, format string, args ...string) {
		check(elem, args...)
		anys := make([]any, len(args))
		for i, a := range args {
			anys[i] = a
		}
		fmt.Fprintf(&b, format+"\n", anys...)
	}
	fmt.Fprintf(&b, "# written by vnetguard for network %s; rewritten on every change\n", n.Name)
	b.WriteString("strict-order\nno-hosts\nexcept-interface=lo\nbind-dynamic\n")
	line("network/bridge[0]", "interface=%s", p.Iface)
	fmt.Fprintf(&b, "pid-file=%s\ndhcp-leasefile=%s\nlog-facility=%s\n", f.Pid, f.Leases, f.Log)
	if n.DNS != nil && n.DNS.Enable == "no" {
		b.WriteString("port=0\n")
	}
	if dom := n.Domain; dom != nil && dom.Name != "" {
		line("network/domain[0]", "domain=%s", dom.Name)
		if dom.LocalOnly == "yes" {
			line("network/domain[0]", "local=/%s/", dom.Name)
		}
		b.WriteString("expand-hosts\n")
	}
	if n.DNS != nil {
		for i, fw := range n.DNS.Forwarders {
			elem := fmt.Sprintf("network/dns[0]/forwarder[%d]", i)
			switch {
			case fw.Domain != "" && fw.Addr != "":
				line(elem, "server=/%s/%s", fw.Domain, fw.Addr)
			case fw.Domain != "":
				line(elem, "server=/%s/", fw.Domain)
			case fw.Addr != "":
				line(elem, "server=%s", fw.Addr)
			}
		}
		for i, h := range n.DNS.Hosts {
			elem := fmt.Sprintf("network/dns[0]/host[%d]", i)
			names := append(append([]string{}, h.Hostnames...), h.IP)
			check(elem, names...)
			fmt.Fprintf(&b, "host-record=%s\n", strings.Join(names, ","))
		}
	}
	isolated := n.ForwardMode() == ""
	_, proxied := n.ProxyNDP()
	leases := 0
	for i, ip := range n.IPs {
		pre, err := ip.Subnet()
		if err != nil {
			return nil, err
		}
		elem := fmt.Sprintf("network/ip[%d]", i)
		if ip.DHCP == nil {
			if pre.Addr().Is6() && p.RA == "dnsmasq" {
				// SLAAC only: advertised, no DHCPv6 addresses.
				line(elem, "dhcp-range=%s,ra-only,64", pre.Masked().Addr().String())
			}
			continue
		}
		mask := strconv.Itoa(pre.Bits())
		if pre.Addr().Is4() {
			mask = netipMask(pre)
		}
		for j, r := range ip.DHCP.Ranges {
			re := fmt.Sprintf("%s/dhcp[0]/range[%d]", elem, j)
			args := []string{r.Start, r.End, mask}
			format := "dhcp-range=%s,%s,%s"
			if slices.Contains(proxied, pre.Masked()) {
				// Proxy NDP: the /64 is the uplink's; guests must send
				// everything through the host, even to their neighbours
				// there.
				format = "dhcp-range=%s,%s,off-link,%s"
			}
			if lt := leaseTime(r.Lease); lt != "" {
				args, format = append(args, lt), format+",%s"
			}
			line(re, format, args...)
			leases += rangeSize(r.Start, r.End)
		}
		for j, h := range ip.DHCP.Hosts {
			he := fmt.Sprintf("%s/dhcp[0]/host[%d]", elem, j)
			var parts []string
			switch {
			case pre.Addr().Is4() && h.MAC != "":
				parts = append(parts, h.MAC)
			case h.ID != "":
				parts = append(parts, "id:"+h.ID)
			}
			if h.IP != "" {
				if pre.Addr().Is6() {
					parts = append(parts, "["+h.IP+"]")
				} else {
					parts = append(parts, h.IP)
				}
			}
			if h.Name != "" {
				parts = append(parts, h.Name)
			}
			if lt := leaseTime(h.Lease); lt != "" {
				parts = append(parts, lt)
			}
			for _, part := range parts {
				check(he, strings.Trim(part, "[]"))
			}
			fmt.Fprintf(&b, "dhcp-host=%s\n", strings.Join(parts, ","))
			leases++
		}
		if bp := ip.DHCP.Bootp; bp != nil && pre.Addr().Is4() {
			if bp.Server != "" {
				line(elem+"/dhcp[0]/bootp[0]", "dhcp-boot=%s,,%s", bp.File, bp.Server)
			} else {
				line(elem+"/dhcp[0]/bootp[0]", "dhcp-boot=%s", bp.File)
			}
		}
	}
	fmt.Fprintf(&b, "dhcp-no-override\ndhcp-authoritative\ndhcp-lease-max=%d\n", max(leases, 1))
	if isolated {
		// No default route through an isolated network (as libvirt).
		b.WriteString("dhcp-option=3\n")
	}
	if p.RA == "dnsmasq" {
		b.WriteString("enable-ra\n")
		if isolated {
			// Advertised, but not as a default router.
			fmt.Fprintf(&b, "ra-param=%s,10,0\n", p.Iface)
		}
	}
	if bad != nil {
		return nil, bad
	}
	return b.Bytes(), nil
}

// netipMask is an IPv4 prefix's netmask in dotted form.
func netipMask(p netip.Prefix) string {
	m := ^uint32(0) << (32 - p.Bits())
	return netip.AddrFrom4([4]byte{byte(m >> 24), byte(m >> 16), byte(m >> 8), byte(m)}).String()
}

// leaseTime is a lease's time as dnsmasq writes it ("" for its default).
func leaseTime(l *netdef.Lease) string {
	if l == nil || l.Expiry == "" {
		return ""
	}
	if l.Expiry == "0" {
		return "infinite"
	}
	switch l.Unit {
	case "seconds":
		return l.Expiry
	case "hours":
		return l.Expiry + "h"
	default:
		return l.Expiry + "m"
	}
}

// rangeSize counts the addresses of a DHCP range, for dhcp-lease-max (an
// IPv6 range counts as many as dnsmasq would hand out, capped).
func rangeSize(start, end string) int {
	a, err1 := netip.ParseAddr(start)
	z, err2 := netip.ParseAddr(end)
	if err1 != nil || err2 != nil {
		return 0
	}
	const most = 1 << 16
	n := 1
	for x := a; x.Less(z) && n < most; x = x.Next() {
		n++
	}
	return n
}

// Dnsmasq runs vnetguard's dnsmasq for each running network whose profile
// says DHCP "dnsmasq", with its configuration, pid file, leases and log in
// Dir (/run/vnetguard/dnsmasq). A renumber rewrites the configuration and
// restarts it; the leases stay, and dnsmasq ignores those outside the new
// ranges.
type Dnsmasq struct {
	Dir  string
	Path string // the dnsmasq binary; "" means /usr/sbin/dnsmasq
	// NetClassDir lists the interfaces ("" means /sys/class/net).
	NetClassDir string
}

func (m Dnsmasq) netClassDir() string {
	if m.NetClassDir == "" {
		return "/sys/class/net"
	}
	return m.NetClassDir
}

func (m Dnsmasq) sidecar() sidecar {
	return sidecar{dir: m.Dir, more: []string{".leases"}, start: func(name, conf, pid, log string) error {
		bin := m.Path
		if bin == "" {
			bin = "/usr/sbin/dnsmasq"
		}
		// dnsmasq checks its configuration and opens its sockets before
		// it forks; the parent exits non-zero on any error.
		out, err := exec.Command(bin, "--conf-file="+conf).CombinedOutput()
		if err != nil {
			return fmt.Errorf("start dnsmasq for network %s: %w: %s", name, err, strings.TrimSpace(string(out)))
		}
		return nil
	}}
}

// Sync makes the dnsmasqs match nets.
func (m Dnsmasq) Sync(nets []*netdef.Definition) error {
	sc := m.sidecar()
	want := map[string][]byte{}
	var errs []error
	for _, d := range nets {
		if _, err := os.Stat(filepath.Join(m.netClassDir(), d.Network.BridgeName())); err != nil {
			// Not up (yet): started once NetworkManager has made the
			// bridge, so that dnsmasq binds to it alone and never to
			// every interface.
			continue
		}
		_, pid, log := sc.files(d.Network.Name)
		c, err := DnsmasqConfig(d, DnsmasqFiles{Pid: pid, Log: log, Leases: strings.TrimSuffix(pid, ".pid") + ".leases"})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if c != nil {
			want[d.Network.Name] = c
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("dnsmasq configuration: %w", errs[0])
	}
	return sc.sync(want)
}

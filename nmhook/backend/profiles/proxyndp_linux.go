package profiles

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/vnetguard/vnetguard/netdef"
	"github.com/vnetguard/vnetguard/nmhook/state"
)

// ProxyNDP keeps the neighbour proxy entries of the running proxy-NDP
// networks on their uplinks (the routes to their guests are the bridge
// profile's). Each network's uplink and /64s are recorded in Dir
// (/run/vnetguard/proxy-ndp/NAME), so that a network's entries are removed
// after it stops, when its definition no longer says where they were.
type ProxyNDP struct {
	Dir       string
	SysctlDir string // "" means /proc/sys
}

// proxied is one network's record: its uplink and the /64s it shares.
type proxied struct {
	uplink   string
	prefixes []netip.Prefix
}

func (r proxied) String() string {
	parts := []string{r.uplink}
	for _, p := range r.prefixes {
		parts = append(parts, p.String())
	}
	return strings.Join(parts, " ") + "\n"
}

func parseProxied(b []byte) (proxied, bool) {
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return proxied{}, false
	}
	r := proxied{uplink: f[0]}
	for _, s := range f[1:] {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return proxied{}, false
		}
		r.prefixes = append(r.prefixes, p)
	}
	return r, true
}

// Sync makes the proxy entries match nets: every proxied address of a
// running proxy-NDP network has an entry on its uplink, with proxy_ndp on
// there; entries inside a recorded /64 that no running network wants are
// removed.
func (x ProxyNDP) Sync(nets []*netdef.Definition) error {
	var errs []error
	want := map[string][]netip.Addr{} // uplink -> addresses
	records := map[string]proxied{}   // network -> record
	for _, d := range nets {
		uplink, shared := d.Network.ProxyNDP()
		if uplink == "" {
			continue
		}
		p, err := FromDefinition(d, false)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		want[uplink] = append(want[uplink], p.ProxyAddrs...)
		records[d.Network.Name] = proxied{uplink: uplink, prefixes: shared}
	}
	if len(records) > 0 {
		if err := state.EnsurePrivateDir(x.Dir); err != nil {
			return err
		}
	}
	// Every uplink and /64 that has or had entries of ours.
	scope := map[string][]netip.Prefix{}
	for name, r := range records {
		if err := state.WriteFileAtomic(filepath.Join(x.Dir, name), []byte(r.String()), 0o600); err != nil {
			errs = append(errs, err)
		}
		scope[r.uplink] = append(scope[r.uplink], r.prefixes...)
	}
	ents, err := os.ReadDir(x.Dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, err)
	}
	var stale []string
	for _, e := range ents {
		if _, ok := records[e.Name()]; ok || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(x.Dir, e.Name()))
		if r, ok := parseProxied(b); err == nil && ok {
			scope[r.uplink] = append(scope[r.uplink], r.prefixes...)
		}
		stale = append(stale, e.Name())
	}
	for uplink, prefixes := range scope {
		if err := x.syncUplink(uplink, prefixes, want[uplink]); err != nil {
			errs = append(errs, fmt.Errorf("proxy NDP on %s: %w", uplink, err))
		}
	}
	if len(errs) == 0 {
		for _, name := range stale {
			os.Remove(filepath.Join(x.Dir, name))
		}
	}
	return errors.Join(errs...)
}

// syncUplink makes the proxy entries on uplink inside prefixes exactly
// want, turning proxy_ndp on when there are any.
func (x ProxyNDP) syncUplink(uplink string, prefixes []netip.Prefix, want []netip.Addr) error {
	link, err := netlink.LinkByName(uplink)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) && len(want) == 0 {
			return nil // gone, and its entries with it
		}
		return err
	}
	if len(want) > 0 {
		if err := x.uplinkSysctls(uplink); err != nil {
			return err
		}
	}
	have, err := netlink.NeighProxyList(link.Attrs().Index, unix.AF_INET6)
	if err != nil {
		return err
	}
	present := map[netip.Addr]bool{}
	var errs []error
	for _, n := range have {
		a, ok := netip.AddrFromSlice(n.IP)
		if !ok || !slices.ContainsFunc(prefixes, func(p netip.Prefix) bool { return p.Contains(a.Unmap()) }) {
			continue // not ours to touch
		}
		a = a.Unmap()
		if slices.Contains(want, a) {
			present[a] = true
			continue
		}
		if err := netlink.NeighDel(&n); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, err)
		}
	}
	for _, a := range want {
		if present[a] {
			continue
		}
		n := &netlink.Neigh{LinkIndex: link.Attrs().Index, Family: unix.AF_INET6, Flags: netlink.NTF_PROXY, IP: a.AsSlice()}
		if err := netlink.NeighSet(n); err != nil {
			errs = append(errs, fmt.Errorf("proxy %s: %w", a, err))
		}
		present[a] = true
	}
	return errors.Join(errs...)
}

// uplinkSysctls turns on what the kernel needs to answer for the guests on
// the uplink: proxy_ndp, and forwarding on the uplink itself (the kernel
// proxies only on a forwarding interface, and NetworkManager sets a
// device's forwarding to 0 when it configures IPv6 on it, whatever
// all.forwarding says). A forwarding interface ignores router
// advertisements at accept_ra=1, so 1 becomes 2 (accept them anyway);
// NetworkManager's own handling (accept_ra=0) is left alone. Each is
// written only when it differs.
func (x ProxyNDP) uplinkSysctls(uplink string) error {
	conf := filepath.Join("net/ipv6/conf", uplink)
	if readSysctl(x.SysctlDir, acceptRA(uplink)) == "1" {
		if _, err := setSysctl(x.SysctlDir, acceptRA(uplink), "2"); err != nil {
			return err
		}
	}
	if _, err := setSysctl(x.SysctlDir, filepath.Join(conf, "forwarding"), "1"); err != nil {
		return err
	}
	_, err := setSysctl(x.SysctlDir, filepath.Join(conf, "proxy_ndp"), "1")
	return err
}

// Package dispatcher reads the environment NetworkManager's dispatcher gives
// a hook. Everything in it is untrusted input: values are parsed strictly,
// counts are bounded, and what does not parse is dropped and reported, never
// acted on.
//
// The addresses and routes the environment lists are a hint, never the
// truth: a hook decides from what the kernel shows (netlink). That costs
// nothing, because NetworkManager (1.42, and since at least 1.30) has
// applied a configuration before it runs hooks for it:
//
//   - pre-up (scripts in dispatcher.d/pre-up.d): the device's addresses and
//     routes are applied and visible through netlink; NetworkManager sets no
//     IP4_*/IP6_* variables then (it does only for an activated device) and
//     waits for the scripts before it reports the device activated.
//   - vpn-pre-up (also pre-up.d): the VPN_IP4_*/VPN_IP6_* variables carry
//     the VPN's configuration, which NetworkManager has already committed:
//     the VPN enters its pre-up state only when the commit of that
//     configuration to the VPN's interface is done (nm-vpn-connection.c,
//     _apply_config then _l3cfg_notify_cb on POST_COMMIT), and it waits for
//     the scripts before it reports the VPN activated.
//   - up, vpn-up, dhcp4-change, dhcp6-change, reapply: applied before.
//   - down, vpn-down: already removed.
//
// So no action carries an address that is known not to be applied yet, and
// an entry that only the environment claims (a stale or forged IP4_ADDRESS_0)
// is reported (Unconfirmed) and otherwise ignored. The lab tests
// TestHookPreUpMovesNetworkBeforeConnectionUp and
// TestHookVPNPreUpMovesNetworkBeforeVPNUp (scripts/e2e) check both pre-up
// facts against the real NetworkManager.
package dispatcher

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/vnetguard/vnetguard/conflict"
)

// maxEntries bounds IP4_NUM_ADDRESSES and friends: NetworkManager never
// sends thousands, and a hostile environment must not make us loop.
const maxEntries = 256

// maxIfaceLen is IFNAMSIZ-1: the kernel's limit on interface names.
const maxIfaceLen = 15

// What a hook does for an action.
type Response int

const (
	Ignore  Response = iota // nothing can have changed addresses or routes
	Check                   // addresses or routes appeared or changed
	Recheck                 // addresses or routes went away
)

var actions = map[string]Response{
	"pre-up": Check, "vpn-pre-up": Check,
	"up": Check, "vpn-up": Check, "dhcp4-change": Check, "dhcp6-change": Check,
	"reapply": Check, "connectivity-change": Check,
	"down": Recheck, "vpn-down": Recheck,
	"pre-down": Ignore, "vpn-pre-down": Ignore,
	"hostname": Ignore, "dns-change": Ignore, "device-add": Ignore, "device-delete": Ignore,
}

// Blocking tells whether NetworkManager holds the connection back until the
// hook ends: pre-up and vpn-pre-up, whose scripts live in
// dispatcher.d/pre-up.d. A hook resolves those itself, at once, so that a
// clashing virtual network has moved before the connection is reported up;
// for the others it may leave the work to a running daemon.
func (ev Event) Blocking() bool {
	return ev.Action == "pre-up" || ev.Action == "vpn-pre-up"
}

// Event is one dispatcher invocation, validated.
type Event struct {
	Action     string
	Response   Response
	Interface  string // DEVICE_IP_IFACE, else DEVICE_IFACE, else argv[1]
	Connection string // CONNECTION_ID, for logs only
	// Host is what the environment claims the connection has: a hint
	// (see the package comment), to be checked against netlink.
	Host    conflict.HostView
	Dropped []string // what was malformed and left out, for the log (at most maxDropped)
	more    int      // how many more were dropped
}

// Parse reads argv (path, interface, action) and the environment as
// NetworkManager sets them. It never fails: an unknown action is ignored,
// malformed values are dropped and listed in Dropped.
func Parse(args []string, getenv func(string) string) Event {
	var ev Event
	action := getenv("NM_DISPATCHER_ACTION")
	if action == "" && len(args) > 2 {
		action = args[2]
	}
	ev.Action = action
	resp, known := actions[action]
	if !known {
		ev.Response = Ignore
		if action != "" {
			ev.drop("unknown action " + strconv.Quote(clip(action)))
		}
		return ev
	}
	ev.Response = resp
	for _, cand := range []string{getenv("DEVICE_IP_IFACE"), getenv("DEVICE_IFACE"), argAt(args, 1)} {
		if cand == "" || cand == "none" {
			continue
		}
		if validIface(cand) {
			ev.Interface = cand
			break
		}
		ev.drop("bad interface name " + strconv.Quote(clip(cand)))
	}
	if id := getenv("CONNECTION_ID"); id != "" {
		ev.Connection = clip(id)
	}
	if resp == Ignore {
		return ev
	}
	vpnIface := getenv("VPN_IP_IFACE")
	if vpnIface != "" && !validIface(vpnIface) {
		ev.drop("bad VPN interface name " + strconv.Quote(clip(vpnIface)))
		vpnIface = ""
	}
	if vpnIface == "" {
		vpnIface = ev.Interface
	}
	for _, fam := range []struct {
		prefix, iface string
		v4            bool
	}{
		{"IP4_", ev.Interface, true}, {"IP6_", ev.Interface, false},
		{"VPN_IP4_", vpnIface, true}, {"VPN_IP6_", vpnIface, false},
	} {
		ev.readAddresses(getenv, fam.prefix, fam.iface, fam.v4)
		ev.readRoutes(getenv, fam.prefix, fam.iface, fam.v4)
	}
	return ev
}

func argAt(args []string, i int) string {
	if i < len(args) {
		return args[i]
	}
	return ""
}

// maxDropped bounds what one event reports as dropped, so a hostile
// environment cannot flood the journal.
const maxDropped = 16

func (ev *Event) drop(what string) {
	if len(ev.Dropped) < maxDropped {
		ev.Dropped = append(ev.Dropped, what)
	} else {
		ev.more++
	}
}

// DroppedSummary lists what was dropped, with a count of the rest.
func (ev *Event) DroppedSummary() []string {
	if ev.more == 0 {
		return ev.Dropped
	}
	return append(slices.Clone(ev.Dropped), fmt.Sprintf("and %d more", ev.more))
}

// count reads a *_NUM_* variable, bounded.
func (ev *Event) count(getenv func(string) string, name string) int {
	s := getenv(name)
	if s == "" {
		return 0
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		ev.drop(name + " is not a count: " + strconv.Quote(clip(s)))
		return 0
	}
	if n > maxEntries {
		ev.drop(fmt.Sprintf("%s=%d is absurd; reading the first %d", name, n, maxEntries))
		return maxEntries
	}
	return n
}

// readAddresses: IP4_ADDRESS_N="a.b.c.d/p gateway" (IPv6 alike).
func (ev *Event) readAddresses(getenv func(string) string, prefix, iface string, v4 bool) {
	n := ev.count(getenv, prefix+"NUM_ADDRESSES")
	for i := 0; i < n; i++ {
		name := prefix + "ADDRESS_" + strconv.Itoa(i)
		val := getenv(name)
		fields := strings.Fields(val)
		if len(fields) == 0 {
			ev.drop(name + " missing")
			continue
		}
		p, err := netip.ParsePrefix(fields[0])
		if err != nil || p.Addr().Is4() != v4 || p.Addr().Zone() != "" {
			ev.drop(name + " malformed: " + strconv.Quote(clip(val)))
			continue
		}
		ev.Host.Addresses = append(ev.Host.Addresses, conflict.HostAddress{Prefix: p, Interface: iface, Scope: "global"})
	}
}

// readRoutes: IP4_ROUTE_N="dst/p nexthop metric" (IPv6 alike). The
// dispatcher does not say which table; these are reported as main.
func (ev *Event) readRoutes(getenv func(string) string, prefix, iface string, v4 bool) {
	n := ev.count(getenv, prefix+"NUM_ROUTES")
	for i := 0; i < n; i++ {
		name := prefix + "ROUTE_" + strconv.Itoa(i)
		val := getenv(name)
		fields := strings.Fields(val)
		if len(fields) == 0 {
			ev.drop(name + " missing")
			continue
		}
		dst, err := netip.ParsePrefix(fields[0])
		if err != nil || dst.Addr().Is4() != v4 || dst.Addr().Zone() != "" {
			ev.drop(name + " malformed: " + strconv.Quote(clip(val)))
			continue
		}
		r := conflict.HostRoute{Dst: dst.Masked(), Interface: iface, Table: 254, Protocol: "dispatcher"}
		if len(fields) > 1 {
			gw, err := netip.ParseAddr(fields[1])
			if err != nil || gw.Is4() != v4 {
				ev.drop(name + " malformed next hop: " + strconv.Quote(clip(val)))
				continue
			}
			if !gw.IsUnspecified() {
				r.Gateway = gw
			}
		}
		ev.Host.Routes = append(ev.Host.Routes, r)
	}
}

// validIface accepts the interface names real systems use: the kernel's
// rules (at most 15 bytes, no '/', ':' or white space, not . or ..) further
// narrowed to letters, digits and "-_.@+", so a hostile name full of shell
// or log metacharacters is refused rather than carried around.
func validIface(s string) bool {
	if s == "" || len(s) > maxIfaceLen || s == "." || s == ".." {
		return false
	}
	for _, c := range []byte(s) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '-' || c == '_' || c == '.' || c == '@' || c == '+'
		if !ok {
			return false
		}
	}
	return true
}

// clip keeps hostile values short and printable in logs.
func clip(s string) string {
	const max = 64
	if len(s) > max {
		s = s[:max] + "…"
	}
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}

// Unconfirmed returns the entries of claimed (an event's Host) that host,
// the kernel's view, does not show: an address is confirmed by the same
// address and prefix length on any interface, a route by a route to the
// same destination in any table. A hook logs them and acts on none.
func Unconfirmed(claimed, host conflict.HostView) conflict.HostView {
	addrs := make(map[netip.Prefix]bool, len(host.Addresses))
	for _, a := range host.Addresses {
		addrs[a.Prefix] = true
	}
	dsts := make(map[netip.Prefix]bool, len(host.Routes))
	for _, r := range host.Routes {
		dsts[r.Dst.Masked()] = true
	}
	var out conflict.HostView
	for _, a := range claimed.Addresses {
		if !addrs[a.Prefix] {
			out.Addresses = append(out.Addresses, a)
		}
	}
	for _, r := range claimed.Routes {
		if !dsts[r.Dst.Masked()] {
			out.Routes = append(out.Routes, r)
		}
	}
	return out
}

// Describe lists a view's addresses and route destinations for a log line,
// at most max of them, then a count of the rest.
func Describe(v conflict.HostView, max int) []string {
	var out []string
	n := 0
	add := func(s string) {
		if len(out) < max {
			out = append(out, s)
		} else {
			n++
		}
	}
	for _, a := range v.Addresses {
		add("address " + a.Prefix.String() + " on " + a.Interface)
	}
	for _, r := range v.Routes {
		add("route " + r.Dst.String() + " via " + r.Interface)
	}
	if n > 0 {
		out = append(out, fmt.Sprintf("and %d more", n))
	}
	return out
}

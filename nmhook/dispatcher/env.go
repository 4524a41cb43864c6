// Package dispatcher reads the environment NetworkManager's dispatcher gives
// a hook. Everything in it is untrusted input: values are parsed strictly,
// counts are bounded, and what does not parse is dropped and reported, never
// acted on.
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
	"up": Check, "vpn-up": Check, "dhcp4-change": Check, "dhcp6-change": Check,
	"reapply": Check, "connectivity-change": Check,
	"down": Recheck, "vpn-down": Recheck,
	"pre-up": Ignore, "pre-down": Ignore, "vpn-pre-up": Ignore, "vpn-pre-down": Ignore,
	"hostname": Ignore, "dns-change": Ignore, "device-add": Ignore, "device-delete": Ignore,
}

// Event is one dispatcher invocation, validated.
type Event struct {
	Action     string
	Response   Response
	Interface  string // DEVICE_IP_IFACE, else DEVICE_IFACE, else argv[1]
	Connection string // CONNECTION_ID, for logs only
	Host       conflict.HostView
	Dropped    []string // what was malformed and left out, for the log (at most maxDropped)
	more       int      // how many more were dropped
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

package main

import (
	"fmt"
	"net/netip"

	"github.com/vnetguard/vnetguard/conflict"
	"github.com/vnetguard/vnetguard/netdef"
)

func init() {
	register("pick", "print a free subnet for a virtual network", runPick)
}

type pickResult struct {
	Subnet    netip.Prefix `json:"subnet"`
	Family    string       `json:"family"`
	Direction string       `json:"direction"`
	Evidence  string       `json:"evidence"`
	Network   string       `json:"network,omitempty"`
}

func runPick(env *runEnv, args []string) int {
	fs := newFlags(env, "pick", "[--family ipv4|ipv6] [--prefix N] [--network FILE] [--json]", `
Print a subnet that overlaps nothing on the host (addresses and routes in
every table), no other network given with --avoid and no --reserve range.
With --network, the pick is for that network: a subnet remembered for it,
then its current one, are tried first, and its prefix length is the default.
IPv4 candidates are 192.168.N.0/24, N counting down from 254 on bare metal
and up from 1 inside a VM (see --hypervisor), then 10.0.0.0/8 and
172.16.0.0/12 in /24s. IPv6 candidates are /64s of this host's random ULA
/48 (RFC 4193), kept in --state-dir.`)
	var host hostOptions
	var alloc allocOptions
	family := fs.String("family", "ipv4", "ipv4 or ipv6")
	bits := fs.Int("prefix", 0, "prefix length of the subnet: 8 to 30 for IPv4, 64 for IPv6 (default 24 for IPv4, 64 for IPv6, or the network's)")
	network := fs.String("network", "", "the network definition the subnet is for (a file, or a directory holding one *.xml file)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	host.register(fs)
	alloc.register(fs)
	if code := parseFlags(env, fs, args); code >= 0 {
		return code
	}
	if fs.NArg() > 0 {
		return fail(env, "pick", fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}
	var fam conflict.Family
	switch *family {
	case "ipv4", "4":
		fam = conflict.IPv4
	case "ipv6", "6":
		fam = conflict.IPv6
	default:
		return fail(env, "pick", fmt.Errorf("--family %q: want ipv4 or ipv6", *family))
	}
	if fs.Changed("prefix") {
		if err := checkPrefixLen(fam, *bits); err != nil {
			return fail(env, "pick", err)
		}
	}
	ctx, err := alloc.resolve(fam == conflict.IPv6)
	if err != nil {
		return fail(env, "pick", err)
	}
	view, _, err := host.read()
	if err != nil {
		return fail(env, "pick", err)
	}
	req := conflict.Request{Family: fam, Bits: *bits, Direction: ctx.direction, ULA: ctx.ula, Usable: ctx.usable}
	if *network != "" {
		d, err := loadOneDefinition("--network", *network)
		if err != nil {
			return fail(env, "pick", err)
		}
		req.Network = d.Network.Name
		addNetworkHints(&req, d, ctx)
	}
	occ := conflict.NewOccupied(conflict.NewIndex(view), ctx.others, ctx.reserved)
	p, err := occ.Allocate(req)
	if err != nil {
		return fail(env, "pick", err)
	}
	if *asJSON {
		dir := "down"
		if ctx.direction == conflict.Up {
			dir = "up"
		}
		if err := writeJSON(env.stdout, pickResult{Subnet: p, Family: *family, Direction: dir, Evidence: ctx.evidence, Network: req.Network}); err != nil {
			return fail(env, "pick", err)
		}
		return exitOK
	}
	fmt.Fprintln(env.stdout, p)
	return exitOK
}

// checkPrefixLen refuses a --prefix that cannot hold a virtual network:
// 0 is not "the default" once given (libvirt's prefix='0' is, but a flag
// given as 0 is a typo or a script's empty variable).
func checkPrefixLen(fam conflict.Family, bits int) error {
	if fam == conflict.IPv6 {
		if bits != 64 {
			return fmt.Errorf("--prefix %d: IPv6 networks are /64 (SLAAC needs a /64)", bits)
		}
		return nil
	}
	if bits < 8 || bits > 30 {
		return fmt.Errorf("--prefix %d: an IPv4 network needs a prefix length from 8 to 30", bits)
	}
	return nil
}

// addNetworkHints makes the network's remembered subnets, then its current
// one, the first candidates, and takes its prefix length as the default.
func addNetworkHints(req *conflict.Request, d *netdef.Definition, ctx *allocContext) {
	for _, s := range d.Network.Subnets() {
		if familyOf(s) != req.Family {
			continue
		}
		if req.Bits == 0 {
			req.Bits = s.Bits()
		}
		req.Remembered = append(req.Remembered, ctx.remembered(req.Network, s)...)
		req.Remembered = append(req.Remembered, s)
	}
}

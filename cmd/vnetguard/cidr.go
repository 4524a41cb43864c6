package main

import (
	"fmt"
	"net/netip"

	"github.com/spf13/pflag"
)

// subnetFlags are the flags whose values are subnets. parseFlags checks
// every value given to them with parseSubnetFlag, whichever command
// registered them, so a typo never reaches the allocator masked.
var subnetFlags = []string{"ipv4", "ipv6", "reserve"}

// parseSubnetFlag reads a subnet given to a flag (flag is the flag as
// typed, e.g. "--ipv4", for the error). It must be canonical: an address with host
// bits set (10.20.30.5/24) is refused rather than silently masked, and the
// error names the subnet that was probably meant. IPv4-mapped IPv6
// addresses are refused too: the IPv4 form is the one vnetguard compares.
func parseSubnetFlag(flag, s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%s %q is not a subnet in CIDR form, like 192.168.50.0/24 or fd00:1::/64", flag, s)
	}
	if p.Addr().Is4In6() {
		return netip.Prefix{}, fmt.Errorf("%s %s is an IPv4-mapped IPv6 prefix: give the IPv4 subnet itself", flag, s)
	}
	if m := p.Masked(); m != p {
		return netip.Prefix{}, fmt.Errorf("%s %s has host bits set: did you mean %s?", flag, s, m)
	}
	return p, nil
}

// checkSubnetFlags applies parseSubnetFlag to every value given to one of
// subnetFlags in fs.
func checkSubnetFlags(fs *pflag.FlagSet) error {
	for _, name := range subnetFlags {
		f := fs.Lookup(name)
		if f == nil || !f.Changed {
			continue
		}
		vals := []string{f.Value.String()}
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			vals = sv.GetSlice()
		}
		for _, v := range vals {
			if _, err := parseSubnetFlag("--"+name, v); err != nil {
				return err
			}
		}
	}
	return nil
}

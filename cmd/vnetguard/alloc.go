package main

import (
	"fmt"
	"net/netip"
	"os"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/vnetguard/vnetguard/conflict"
	"github.com/vnetguard/vnetguard/nmhook/hypervisor"
	"github.com/vnetguard/vnetguard/nmhook/state"
)

// allocOptions are the settings every command that chooses subnets shares.
type allocOptions struct {
	hypervisor string
	stateDir   string
	cacheDir   string
	reserved   []string
	avoid      []string
}

func (o *allocOptions) register(fs *pflag.FlagSet) {
	fs.StringVar(&o.hypervisor, "hypervisor", "auto", "count the 192.168.N.0/24 pool up (yes: this host is a VM) or down (no: bare metal); auto detects")
	fs.StringVar(&o.stateDir, "state-dir", "/var/lib/vnetguard", "where the host's IPv6 ULA prefix is kept")
	fs.StringVar(&o.cacheDir, "cache-dir", "/var/cache/vnetguard", "where subnets chosen before are remembered")
	fs.StringArrayVar(&o.reserved, "reserve", nil, "a prefix never to hand out (repeatable)")
	fs.StringArrayVar(&o.avoid, "avoid", nil, "another network's definition file or directory whose subnets must not be reused (repeatable)")
}

// allocContext is everything the allocator needs, resolved once.
type allocContext struct {
	direction conflict.Direction
	evidence  string
	ula       conflict.ULAGlobalID
	ulaErr    error // why no IPv6 subnet can be chosen (an unusable ULA file); IPv6 is then not usable
	usable    map[conflict.Family]bool
	cacheDir  string        // where memory.json is, read on first use
	memory    *state.Memory // nil until then
	others    []netip.Prefix
	reserved  []netip.Prefix
}

// resolve resolves the options for a command that will choose an IPv6
// subnet when needULA: the host's ULA must then be usable.
func (o *allocOptions) resolve(needULA bool) (*allocContext, error) {
	ctx, err := o.resolveAll(needULA)
	if err != nil {
		return nil, err
	}
	if ctx.ulaErr != nil {
		return nil, ctx.ulaErr
	}
	return ctx, nil
}

// resolveKeepingIPv4 resolves the options for a command that may choose
// IPv6 subnets (when wantULA) but must go on with IPv4 whatever happens
// to the ULA file: an unusable one only makes IPv6 unusable (ctx.ulaErr
// says why, with the way out), and is reported on stderr.
func (o *allocOptions) resolveKeepingIPv4(wantULA bool) (*allocContext, error) {
	ctx, err := o.resolveAll(wantULA)
	if err == nil && ctx.ulaErr != nil {
		fmt.Fprintf(os.Stderr, "vnetguard: %v\n", ctx.ulaErr)
	}
	return ctx, err
}

// resolveAll resolves the options; the host's ULA is loaded (or made) when
// wantULA and IPv6 is usable here.
func (o *allocOptions) resolveAll(wantULA bool) (*allocContext, error) {
	mode, ok := hypervisor.ParseMode(o.hypervisor)
	if !ok {
		return nil, fmt.Errorf("--hypervisor %q: want auto, yes or no", o.hypervisor)
	}
	hv := hypervisor.Resolve(mode, func() hypervisor.Result { return hypervisor.Detect(os.DirFS("/")) })
	ctx := &allocContext{direction: conflict.Down, evidence: "bare metal", usable: usableFamilies()}
	if hv.Guest {
		ctx.direction, ctx.evidence = conflict.Up, hv.Evidence
	} else if hv.Evidence != "" {
		ctx.evidence = hv.Evidence
	}
	for _, s := range o.reserved {
		p, err := parseCIDR(s)
		if err != nil {
			return nil, fmt.Errorf("--reserve: %w", err)
		}
		ctx.reserved = append(ctx.reserved, p)
	}
	if len(o.avoid) > 0 {
		defs, err := loadDefinitions(o.avoid)
		if err != nil {
			return nil, fmt.Errorf("--avoid: %w", err)
		}
		for _, d := range defs {
			ctx.others = append(ctx.others, d.Network.Subnets()...)
		}
	}
	ctx.cacheDir = o.cacheDir
	if wantULA && ctx.usable[conflict.IPv6] {
		ctx.loadULA(o.stateDir)
	}
	return ctx, nil
}

// remembered are the subnets remembered for a network's defined subnet
// s. memory.json is read on the first call only: the commands that never
// choose a subnet here (the guard's settings) never read it.
func (c *allocContext) remembered(network string, s netip.Prefix) []netip.Prefix {
	if c.memory == nil {
		mem, err := state.LoadMemory(c.cacheDir)
		if err != nil {
			// A damaged cache only loses hints; say so and go on without it.
			fmt.Fprintf(os.Stderr, "vnetguard: ignoring remembered subnets: %v\n", err)
		}
		c.memory = mem
	}
	return c.memory.Remembered(network, s)
}

// loadULA loads (or makes) the host's ULA; when it cannot, IPv6 subnets
// cannot be chosen, and IPv4 ones still can.
func (c *allocContext) loadULA(stateDir string) {
	id, err := state.LoadOrCreateULA(stateDir)
	if err != nil {
		c.ulaErr = fmt.Errorf("no IPv6 subnet can be chosen: %w", err)
		c.usable[conflict.IPv6] = false
		return
	}
	c.ula = id
}

// usableFamilies: a family is offered only when this host can open a socket
// of it (IPv6 may be disabled at boot with ipv6.disable=1).
func usableFamilies() map[conflict.Family]bool {
	can := func(domain int) bool {
		fd, err := syscall.Socket(domain, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			return false
		}
		syscall.Close(fd)
		return true
	}
	return map[conflict.Family]bool{
		conflict.IPv4: can(syscall.AF_INET),
		conflict.IPv6: can(syscall.AF_INET6),
	}
}

// parseCIDR accepts a prefix with or without host bits and masks it.
func parseCIDR(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return p, fmt.Errorf("%q is not a CIDR prefix like 192.168.50.0/24 or fd00:1::/64", s)
	}
	return p.Masked(), nil
}

func familyOf(p netip.Prefix) conflict.Family {
	if p.Addr().Is4() {
		return conflict.IPv4
	}
	return conflict.IPv6
}

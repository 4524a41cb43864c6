package conflict

import (
	"errors"
	"fmt"
	"hash/fnv"
	"net/netip"
	"strings"

	"github.com/gaissmai/bart"
)

// Family is an address family.
type Family int

const (
	IPv4 Family = 4
	IPv6 Family = 6
)

func (f Family) String() string {
	switch f {
	case IPv4:
		return "IPv4"
	case IPv6:
		return "IPv6"
	}
	return fmt.Sprintf("Family(%d)", int(f))
}

// FamilyOf is the family of a prefix.
func FamilyOf(p netip.Prefix) Family {
	if p.Addr().Is4() {
		return IPv4
	}
	return IPv6
}

// Direction is the order a pool is walked in. Inside a hypervisor guest
// vnetguard counts up and on bare metal down, so a host and the guests it
// runs (which may run vnetguard too) choose from opposite ends. The zero
// value is Down.
type Direction int

const (
	Down Direction = iota // 192.168.254.0/24 first: bare metal
	Up                    // 192.168.1.0/24 first: inside a VM
)

func (d Direction) String() string {
	if d == Up {
		return "up"
	}
	return "down"
}

// Pool is an IPv4 range carved into candidates of /Bits (0 means /24),
// minus Exclude.
type Pool struct {
	Prefix  netip.Prefix
	Bits    int
	Exclude []netip.Prefix // never handed out, e.g. 192.168.0.0/24
}

// DefaultPools4 are 192.168.N.0/24 for N 1..254 (N=0 and 255 are left
// out: routers and appliances squat on them), then 10.0.0.0/8 and
// 172.16.0.0/12 in /24s when the first is full.
func DefaultPools4() []Pool {
	return []Pool{
		{Prefix: netip.MustParsePrefix("192.168.0.0/16"), Bits: 24,
			Exclude: []netip.Prefix{netip.MustParsePrefix("192.168.0.0/24"), netip.MustParsePrefix("192.168.255.0/24")}},
		{Prefix: netip.MustParsePrefix("10.0.0.0/8"), Bits: 24},
		{Prefix: netip.MustParsePrefix("172.16.0.0/12"), Bits: 24},
	}
}

// Occupied is everything a candidate must not overlap: the host's
// addresses and routes (the Index, so the same skip rules as Check, but
// with nothing "own": a network's current bridge address occupies its old
// subnet), other virtual networks' subnets (active or only defined), and
// reserved ranges. It is immutable and safe for concurrent use; With makes
// an extended copy. A nil *Occupied occupies nothing.
type Occupied struct {
	host  *Index
	extra *bart.Lite     // others and reserved
	more  []netip.Prefix // added by With: few, scanned
}

// NewOccupied combines a host index (nil: an empty host) with other
// networks' subnets and reserved ranges. The index is shared, not copied.
func NewOccupied(ix *Index, others, reserved []netip.Prefix) *Occupied {
	extra := &bart.Lite{}
	for _, list := range [][]netip.Prefix{others, reserved} {
		for _, p := range list {
			if p.IsValid() {
				extra.Insert(p.Masked())
			}
		}
	}
	return &Occupied{host: ix, extra: extra}
}

// With returns o plus the given prefixes; o itself is unchanged. It is
// meant for a few additions (a plan's chosen subnets), not thousands.
func (o *Occupied) With(ps ...netip.Prefix) *Occupied {
	var c Occupied
	if o != nil {
		c = *o
	}
	c.more = make([]netip.Prefix, 0, len(c.more)+len(ps))
	if o != nil {
		c.more = append(c.more, o.more...)
	}
	for _, p := range ps {
		if p.IsValid() {
			c.more = append(c.more, p.Masked())
		}
	}
	return &c
}

// overlaps reports whether anything occupied overlaps p (masked).
func (o *Occupied) overlaps(p netip.Prefix) bool {
	if o == nil {
		return false
	}
	if o.host.overlaps(p) || (o.extra != nil && o.extra.OverlapsPrefix(p)) {
		return true
	}
	for _, m := range o.more {
		if m.Overlaps(p) {
			return true
		}
	}
	return false
}

// covers reports whether one occupied prefix contains all of p (masked).
func (o *Occupied) covers(p netip.Prefix) bool {
	if o == nil {
		return false
	}
	if o.host.covers(p) || (o.extra != nil && o.extra.LookupPrefix(p)) {
		return true
	}
	for _, m := range o.more {
		if m.Bits() <= p.Bits() && m.Contains(p.Addr()) {
			return true
		}
	}
	return false
}

// Free reports whether p is valid and overlaps nothing occupied.
func (o *Occupied) Free(p netip.Prefix) bool {
	return p.IsValid() && !o.overlaps(p.Masked())
}

// Request asks for one subnet.
type Request struct {
	Network    string          // the network it is for: seeds the IPv6 subnet ID
	Family     Family          // IPv4 or IPv6
	Bits       int             // the size; 0 means each pool's own (24 by default) for IPv4, 64 for IPv6
	Remembered []netip.Prefix  // tried first, in order; skipped when of another family or size, or not free
	Pools      []Pool          // IPv4 pools, in order; nil means DefaultPools4
	Direction  Direction       // the walk order in every IPv4 pool (see Allocate)
	ULA        ULAGlobalID     // IPv6 candidates are /64s of this /48
	Usable     map[Family]bool // a family missing or false is refused; nil means both are usable
}

// ErrExhausted: every candidate is taken.
var ErrExhausted = errors.New("no free subnet left")

// ErrUnusable: the requested family cannot be used on this host.
var ErrUnusable = errors.New("address family not usable")

// Allocate returns a free subnet for r, never one overlapping o.
//
// Remembered subnets come first. Then, for IPv4, the pools in order, each
// walked in r.Direction: Down from its top (192.168.254.0/24,
// 10.255.255.0/24, 172.31.255.0/24), Up from its bottom (192.168.1.0/24,
// 10.0.0.0/24, 172.16.0.0/24). The direction holds in the fallback pools
// too, so that a bare-metal host and its guests stay at opposite ends
// however full 192.168 is. For IPv6 the candidates are the /64s of r.ULA's
// /48, from the subnet ID hash(r.Network) onward, wrapping round.
//
// Errors: an unknown or unusable family (ErrUnusable), an absurd size
// (IPv4 outside /8../30, IPv6 other than /64, no pool large enough), and
// nothing free (ErrExhausted). A remembered IPv4 subnet must have the size
// asked for, or when Bits is 0 the first pool's. A pool too small for the
// size is passed over.
func (o *Occupied) Allocate(r Request) (netip.Prefix, error) {
	if r.Family != IPv4 && r.Family != IPv6 {
		return netip.Prefix{}, fmt.Errorf("unknown address family %d", int(r.Family))
	}
	if r.Usable != nil && !r.Usable[r.Family] {
		return netip.Prefix{}, fmt.Errorf("%w: %s cannot be used on this host (no %s socket can be opened)", ErrUnusable, r.Family, r.Family)
	}
	if r.Family == IPv6 {
		if r.Bits != 0 && r.Bits != 64 {
			return netip.Prefix{}, fmt.Errorf("IPv6 networks are /64 (SLAAC needs a /64), not /%d", r.Bits)
		}
		if p, ok := o.remembered(r.Remembered, IPv6, 64); ok {
			return p, nil
		}
		return o.allocateULA(r.Network, r.ULA)
	}
	pools := r.Pools
	if pools == nil {
		pools = DefaultPools4()
	}
	if len(pools) == 0 {
		return netip.Prefix{}, fmt.Errorf("%w: no IPv4 pools to choose from", ErrExhausted)
	}
	// Sizes per pool; a pool too small for the size (or not IPv4) is
	// passed over, and an error given only when no pool is left.
	sizes := make([]int, len(pools))
	fits := 0
	for i, pool := range pools {
		bits := cmpOr(r.Bits, pool.Bits, 24)
		if bits < 8 || bits > 30 {
			return netip.Prefix{}, fmt.Errorf("an IPv4 network of /%d makes no sense: choose /8 to /30", bits)
		}
		if pool.Prefix.IsValid() && pool.Prefix.Addr().Is4() && bits >= pool.Prefix.Bits() {
			sizes[i] = bits
			fits++
		}
	}
	if p, ok := o.remembered(r.Remembered, IPv4, cmpOr(r.Bits, pools[0].Bits, 24)); ok {
		return p, nil
	}
	if fits == 0 {
		return netip.Prefix{}, fmt.Errorf("no pool (%s) can hold an IPv4 /%d", describePools(pools), cmpOr(r.Bits, pools[0].Bits, 24))
	}
	for i, pool := range pools {
		if sizes[i] == 0 {
			continue
		}
		w := walker{o: o, bits: sizes[i], dir: r.Direction, exclude: pool.Exclude}
		if p, ok := w.first(pool.Prefix.Masked()); ok {
			return p, nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("%w: every IPv4 /%d of %s is taken", ErrExhausted, cmpOr(r.Bits, pools[0].Bits, 24), describePools(pools))
}

func cmpOr(v ...int) int {
	for _, x := range v {
		if x != 0 {
			return x
		}
	}
	return 0
}

func (o *Occupied) remembered(list []netip.Prefix, f Family, bits int) (netip.Prefix, bool) {
	for _, p := range list {
		if p.IsValid() && p.Bits() == bits && FamilyOf(p) == f && o.Free(p) {
			return p.Masked(), true
		}
	}
	return netip.Prefix{}, false
}

// ULASubnetID is the 16-bit subnet ID a network's IPv6 search starts at:
// a stable hash (FNV-1a) of its name, so a network gets the same /64 on
// every run, and different networks rarely probe the same IDs.
func ULASubnetID(network string) uint16 {
	h := fnv.New32a()
	h.Write([]byte(network))
	return uint16(h.Sum32())
}

// allocateULA probes subnet IDs from ULASubnetID(network) onward.
func (o *Occupied) allocateULA(network string, g ULAGlobalID) (netip.Prefix, error) {
	start := uint64(ULASubnetID(network))
	w := walker{o: o, bits: 64, dir: Up}
	for _, span := range [][2]uint64{{start, 0xffff}, {0, start - 1}} {
		if span[0] > span[1] { // start == 0: the first span was all of them
			continue
		}
		w.lo, w.hi, w.bounded = span[0], span[1], true
		if p, ok := w.first(g.Prefix48()); ok {
			return p, nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("%w: every IPv6 /64 of %s is taken", ErrExhausted, g.Prefix48())
}

func describePools(pools []Pool) string {
	s := make([]string, len(pools))
	for i, p := range pools {
		s[i] = p.Prefix.String()
	}
	return strings.Join(s, ", ")
}

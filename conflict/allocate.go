package conflict

import (
	"errors"
	"fmt"
	"hash/fnv"
	"net/netip"

	"github.com/gaissmai/bart"
)

// Family is an address family.
type Family int

const (
	IPv4 Family = 4
	IPv6 Family = 6
)

func (f Family) String() string {
	if f == IPv6 {
		return "IPv6"
	}
	return "IPv4"
}

// Direction is the order a pool is walked in. Inside a hypervisor guest
// vnetguard counts up and on bare metal down, so a host and the guests it
// runs (which may run vnetguard too) choose from opposite ends.
type Direction int

const (
	Down Direction = iota // 192.168.254.0/24 first: bare metal
	Up                    // 192.168.1.0/24 first: inside a VM
)

// Pool is a range carved into candidates of the requested size, minus
// Exclude. Bits is the size handed out when a request names none.
type Pool struct {
	Prefix  netip.Prefix
	Bits    int
	Exclude []netip.Prefix
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
// addresses and non-default routes, other virtual networks' subnets, and
// reserved ranges.
type Occupied struct {
	host  *Index
	extra *bart.Lite
}

// NewOccupied combines a host index with other networks' subnets and
// reserved ranges. The index is shared, not copied.
func NewOccupied(ix *Index, others, reserved []netip.Prefix) *Occupied {
	extra := &bart.Lite{}
	for _, p := range others {
		if p.IsValid() {
			extra.Insert(p.Masked())
		}
	}
	for _, p := range reserved {
		if p.IsValid() {
			extra.Insert(p.Masked())
		}
	}
	if ix == nil {
		ix = NewIndex(HostView{})
	}
	return &Occupied{host: ix, extra: extra}
}

// Free reports whether p overlaps nothing occupied.
func (o *Occupied) Free(p netip.Prefix) bool {
	p = p.Masked()
	return p.IsValid() && !o.host.table.OverlapsPrefix(p) && !o.extra.OverlapsPrefix(p)
}

// Request asks for one subnet.
type Request struct {
	Network    string         // the network it is for: seeds the IPv6 subnet ID
	Family     Family         // IPv4 or IPv6
	Bits       int            // 0 means 24 for IPv4, 64 for IPv6
	Remembered []netip.Prefix // tried first, in order, when of the right family and size
	Pools      []Pool         // IPv4 pools; nil means DefaultPools4
	Direction  Direction      // the walk order in every IPv4 pool
	ULA        ULAGlobalID    // IPv6 candidates are /64s of this /48
	Usable     map[Family]bool
}

// ErrExhausted: every candidate is taken.
var ErrExhausted = errors.New("no free subnet left in the pools")

// Allocate returns a free subnet for r, never one overlapping o.
func (o *Occupied) Allocate(r Request) (netip.Prefix, error) {
	if r.Family != IPv4 && r.Family != IPv6 {
		return netip.Prefix{}, fmt.Errorf("unknown address family %d", r.Family)
	}
	if r.Usable != nil && !r.Usable[r.Family] {
		return netip.Prefix{}, fmt.Errorf("%s is not usable on this host (no %s socket can be opened)", r.Family, r.Family)
	}
	pools := r.Pools
	if pools == nil {
		pools = DefaultPools4()
	}
	bits := r.Bits
	switch {
	case bits == 0 && r.Family == IPv4:
		bits = 24
		if len(pools) > 0 && pools[0].Bits != 0 {
			bits = pools[0].Bits
		}
	case bits == 0:
		bits = 64
	case r.Family == IPv4 && (bits < 8 || bits > 30):
		return netip.Prefix{}, fmt.Errorf("an IPv4 network of /%d makes no sense: choose /8 to /30", bits)
	case r.Family == IPv6 && bits != 64:
		return netip.Prefix{}, fmt.Errorf("IPv6 networks are /64 (SLAAC needs a /64), not /%d", bits)
	}
	for _, p := range r.Remembered {
		if p.Bits() == bits && p.Addr().Is4() == (r.Family == IPv4) && o.Free(p) {
			return p.Masked(), nil
		}
	}
	if r.Family == IPv6 {
		return o.allocateULA(r.Network, r.ULA)
	}
	for _, pool := range pools {
		if p, ok := o.walk(pool, bits, r.Direction); ok {
			return p, nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("%w: every /%d of %s is taken", ErrExhausted, bits, describePools(pools))
}

// walk returns the first free /bits of pool in the direction's order. A
// pool whose own size is larger than bits is skipped: its candidates would
// not be /bits.
func (o *Occupied) walk(pool Pool, bits int, dir Direction) (netip.Prefix, bool) {
	base := pool.Prefix.Masked()
	if !base.Addr().Is4() || bits < base.Bits() {
		return netip.Prefix{}, false
	}
	count := uint32(1) << (bits - base.Bits())
	start := ipv4ToUint(base.Addr())
	step := uint32(1) << (32 - bits)
	for i := uint32(0); i < count; i++ {
		n := i
		if dir == Down {
			n = count - 1 - i
		}
		cand := netip.PrefixFrom(uintToIPv4(start+n*step), bits)
		if excluded(pool.Exclude, cand) || !o.Free(cand) {
			continue
		}
		return cand, true
	}
	return netip.Prefix{}, false
}

func excluded(ex []netip.Prefix, p netip.Prefix) bool {
	for _, e := range ex {
		if e.Overlaps(p) {
			return true
		}
	}
	return false
}

// allocateULA probes 16-bit subnet IDs starting at a stable hash of the
// network's name, so a network gets the same /64 on every host run until
// that one is taken.
func (o *Occupied) allocateULA(network string, g ULAGlobalID) (netip.Prefix, error) {
	h := fnv.New32a()
	h.Write([]byte(network))
	start := uint16(h.Sum32())
	for i := 0; i < 1<<16; i++ {
		cand := g.Subnet(start + uint16(i))
		if o.Free(cand) {
			return cand, nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("%w: every /64 of %s is taken", ErrExhausted, g.Prefix48())
}

func describePools(pools []Pool) string {
	s := ""
	for i, p := range pools {
		if i > 0 {
			s += ", "
		}
		s += p.Prefix.String()
	}
	return s
}

func ipv4ToUint(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func uintToIPv4(u uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(u >> 24), byte(u >> 16), byte(u >> 8), byte(u)})
}

// Move is one subnet of a network moving to another.
type Move struct {
	From netip.Prefix `json:"from"`
	To   netip.Prefix `json:"to"`
}

package conflict

import "net/netip"

// walker finds the first free /bits candidate of a block in a direction's
// order without visiting every candidate: it descends the binary tree of
// the block, dropping a half an occupied prefix covers entirely and
// answering at once in a half nothing overlaps. The cost grows with the
// occupied prefixes in the way, not with the size of the block (10.0.0.0/8
// has 65,536 /24s), so a full pool is rejected in a few lookups.
type walker struct {
	o       *Occupied
	bits    int
	dir     Direction
	exclude []netip.Prefix // the pool's, scanned

	// With bounded, only candidates lo..hi (inclusive, counted from the
	// block's first /bits) are eligible.
	bounded bool
	lo, hi  uint64
}

// first returns the first free candidate of block, which must be masked
// and hold /bits subnets, with bits-block.Bits() at most 63.
func (w *walker) first(block netip.Prefix) (netip.Prefix, bool) {
	n := uint64(1)<<(w.bits-block.Bits()) - 1
	if !w.bounded {
		w.lo, w.hi = 0, n
	}
	return w.search(block, 0, n)
}

// search looks in node, whose candidates are numbered nlo..nhi.
func (w *walker) search(node netip.Prefix, nlo, nhi uint64) (netip.Prefix, bool) {
	if nhi < w.lo || nlo > w.hi || w.covered(node) {
		return netip.Prefix{}, false
	}
	inside := nlo >= w.lo && nhi <= w.hi
	if inside && !w.overlaps(node) {
		if w.dir == Down {
			return lastSubnet(node, w.bits), true
		}
		return netip.PrefixFrom(node.Addr(), w.bits), true
	}
	if node.Bits() >= w.bits { // one candidate, taken
		return netip.Prefix{}, false
	}
	low, high := split(node)
	mid := nlo + (nhi-nlo)/2
	if w.dir == Down {
		if p, ok := w.search(high, mid+1, nhi); ok {
			return p, true
		}
		return w.search(low, nlo, mid)
	}
	if p, ok := w.search(low, nlo, mid); ok {
		return p, true
	}
	return w.search(high, mid+1, nhi)
}

func (w *walker) covered(p netip.Prefix) bool {
	for _, e := range w.exclude {
		if e.Bits() <= p.Bits() && e.Contains(p.Addr()) {
			return true
		}
	}
	return w.o.covers(p)
}

func (w *walker) overlaps(p netip.Prefix) bool {
	for _, e := range w.exclude {
		if e.Overlaps(p) {
			return true
		}
	}
	return w.o.overlaps(p)
}

// split halves a masked prefix: the half with the next bit clear, and the
// half with it set.
func split(p netip.Prefix) (netip.Prefix, netip.Prefix) {
	b := p.Bits()
	return netip.PrefixFrom(p.Addr(), b+1), netip.PrefixFrom(setBits(p.Addr(), b, b+1), b+1)
}

// lastSubnet is the highest /bits inside p.
func lastSubnet(p netip.Prefix, bits int) netip.Prefix {
	return netip.PrefixFrom(setBits(p.Addr(), p.Bits(), bits), bits)
}

// setBits sets the address bits from (counted from the top) up to but not
// including to.
func setBits(a netip.Addr, from, to int) netip.Addr {
	if a.Is4() {
		b := a.As4()
		for i := from; i < to; i++ {
			b[i/8] |= 0x80 >> (i % 8)
		}
		return netip.AddrFrom4(b)
	}
	b := a.As16()
	for i := from; i < to; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	return netip.AddrFrom16(b)
}

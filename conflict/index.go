package conflict

import (
	"net/netip"

	"github.com/gaissmai/bart"
)

// Conflict kinds.
const (
	KindAddress = "address" // a host address's subnet
	KindRoute   = "route"   // a route of any table
	KindNetwork = "network" // another virtual network's subnet (CheckOverlaps)
)

// entry is one host address or route that can clash.
type entry struct {
	kind    string
	host    netip.Prefix // address with its length, or route destination
	iface   string
	table   int
	gateway netip.Addr
	typ     string
	next    int32 // the next entry with the same masked prefix, or -1
}

// Index holds the host entries that can clash in a prefix trie keyed by
// masked prefix, so a check walks only the prefixes covering and covered
// by a subnet instead of every route. Entries sharing a prefix are chained
// through one flat slice, so building costs one trie update per entry and
// no allocation per entry. An Index is immutable after NewIndex and safe
// for concurrent use; the zero value is not usable, a nil *Index is an
// empty host.
type Index struct {
	table   bart.Table[int32] // masked prefix -> head of its entry chain
	entries []entry
}

// NewIndex builds the index of a host view, dropping what can never clash
// (see ignorable, routeTypeCounts, mirrorType). It keeps no reference to h.
func NewIndex(h HostView) *Index {
	ix := &Index{entries: make([]entry, 0, len(h.Addresses)+len(h.Routes))}
	// Address prefixes, to tell a route that mirrors an address.
	var addrs bart.Lite
	for _, a := range h.Addresses {
		if a.Prefix.IsValid() {
			addrs.Insert(a.Prefix.Masked())
		}
	}
	for _, a := range h.Addresses {
		if ignorable(a.Prefix.Masked()) {
			continue
		}
		ix.add(entry{kind: KindAddress, host: a.Prefix, iface: a.Interface})
	}
	for _, r := range h.Routes {
		dst := r.Dst.Masked()
		if ignorable(dst) || !routeTypeCounts(r.Type) || (mirrorType(r.Type) && addrs.LookupPrefix(dst)) {
			continue
		}
		ix.add(entry{kind: KindRoute, host: dst, iface: r.Interface, table: r.Table, gateway: r.Gateway, typ: r.Type})
	}
	return ix
}

func (ix *Index) add(e entry) {
	i := int32(len(ix.entries))
	ix.table.Modify(e.host.Masked(), func(head int32, ok bool) (int32, bool) {
		e.next = -1
		if ok {
			e.next = head
		}
		return i, false
	})
	ix.entries = append(ix.entries, e)
}

// Len is the number of host entries that can clash.
func (ix *Index) Len() int {
	if ix == nil {
		return 0
	}
	return len(ix.entries)
}

// overlaps reports whether any indexed entry overlaps p.
func (ix *Index) overlaps(p netip.Prefix) bool {
	return ix != nil && ix.table.OverlapsPrefix(p)
}

// covers reports whether an indexed entry contains all of p.
func (ix *Index) covers(p netip.Prefix) bool {
	if ix == nil {
		return false
	}
	_, ok := ix.table.LookupPrefix(p)
	return ok
}

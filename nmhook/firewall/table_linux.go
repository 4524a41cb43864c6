package firewall

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/vnetguard/vnetguard/netdef"
)

// Table writes the rules into the current network namespace's nftables.
type Table struct{}

// Sync replaces the table's contents with the rules of nets in one
// transaction: the table is added (so that deleting it cannot fail),
// deleted and made again with every chain and rule. With no rules it is
// only deleted.
func (Table) Sync(nets []*netdef.Definition) error {
	return Apply(Rules(nets))
}

// Apply replaces the table with rules (none: the table is removed).
func Apply(rules []Rule) error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	t := &nftables.Table{Family: nftables.TableFamilyINet, Name: TableName}
	c.AddTable(t)
	c.DelTable(t)
	if len(rules) > 0 {
		c.AddTable(t)
		accept := nftables.ChainPolicyAccept
		chains := map[string]*nftables.Chain{
			Input: c.AddChain(&nftables.Chain{Name: Input, Table: t, Type: nftables.ChainTypeFilter,
				Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityFilter, Policy: &accept}),
			Forward: c.AddChain(&nftables.Chain{Name: Forward, Table: t, Type: nftables.ChainTypeFilter,
				Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &accept}),
			Postrouting: c.AddChain(&nftables.Chain{Name: Postrouting, Table: t, Type: nftables.ChainTypeNAT,
				Hooknum: nftables.ChainHookPostrouting, Priority: natPriority, Policy: &accept}),
		}
		for _, r := range rules {
			exprs, err := compile(r)
			if err != nil {
				return fmt.Errorf("nftables rule %q: %w", r, err)
			}
			c.AddRule(&nftables.Rule{Table: t, Chain: chains[r.Chain], Exprs: exprs})
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables: write table inet %s (%d rules): %w", TableName, len(rules), err)
	}
	return nil
}

// natPriority runs vnetguard's NAT chain just before NetworkManager's
// shared-mode chains (srcnat, 100): the first binding made wins.
var natPriority = nftables.ChainPriorityRef(*nftables.ChainPriorityNATSource - 1)

func ifname(s string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, s)
	return b
}

// compile turns a rule into nftables expressions.
func compile(r Rule) ([]expr.Any, error) {
	var e []expr.Any
	cmp := func(op expr.CmpOp, data []byte) { e = append(e, &expr.Cmp{Op: op, Register: 1, Data: data}) }
	meta := func(k expr.MetaKey) { e = append(e, &expr.Meta{Key: k, Register: 1}) }
	if r.IIf != "" {
		meta(expr.MetaKeyIIFNAME)
		cmp(expr.CmpOpEq, ifname(r.IIf))
	}
	if r.OIf != "" {
		meta(expr.MetaKeyOIFNAME)
		cmp(expr.CmpOpEq, ifname(r.OIf))
	}
	if r.OIfNot != "" {
		meta(expr.MetaKeyOIFNAME)
		cmp(expr.CmpOpNeq, ifname(r.OIfNot))
	}
	fam := netip.Prefix{}
	for _, p := range []netip.Prefix{r.Src, r.Dst} {
		if p.IsValid() {
			if fam.IsValid() && fam.Addr().Is4() != p.Addr().Is4() {
				return nil, fmt.Errorf("addresses of two families")
			}
			fam = p
		}
	}
	if fam.IsValid() {
		meta(expr.MetaKeyNFPROTO)
		proto := byte(unix.NFPROTO_IPV6)
		if fam.Addr().Is4() {
			proto = unix.NFPROTO_IPV4
		}
		cmp(expr.CmpOpEq, []byte{proto})
	}
	addr := func(p netip.Prefix, src, not bool) {
		off, l := uint32(24), uint32(16) // IPv6 daddr
		switch {
		case p.Addr().Is4() && src:
			off, l = 12, 4
		case p.Addr().Is4():
			off, l = 16, 4
		case src:
			off = 8
		}
		e = append(e, &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: l})
		mask := netip.PrefixFrom(p.Addr(), p.Bits())
		m := make([]byte, l)
		for i := 0; i < p.Bits(); i++ {
			m[i/8] |= 0x80 >> (i % 8)
		}
		e = append(e, &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: l, Mask: m, Xor: make([]byte, l)})
		op := expr.CmpOpEq
		if not {
			op = expr.CmpOpNeq
		}
		cmp(op, mask.Masked().Addr().AsSlice())
	}
	if r.Src.IsValid() {
		addr(r.Src, true, false)
	}
	if r.Dst.IsValid() {
		addr(r.Dst, false, r.DstNot)
	}
	if r.CtReply {
		e = append(e, &expr.Ct{Register: 1, Key: expr.CtKeySTATE},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
				Mask: binary.NativeEndian.AppendUint32(nil, expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED),
				Xor:  make([]byte, 4)})
		cmp(expr.CmpOpNeq, make([]byte, 4))
	}
	if r.Proto != "" {
		p := map[string]byte{"udp": unix.IPPROTO_UDP, "tcp": unix.IPPROTO_TCP, "icmpv6": unix.IPPROTO_ICMPV6}[r.Proto]
		if p == 0 {
			return nil, fmt.Errorf("unknown protocol %q", r.Proto)
		}
		meta(expr.MetaKeyL4PROTO)
		cmp(expr.CmpOpEq, []byte{p})
	}
	if r.Port != 0 {
		e = append(e, &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2})
		cmp(expr.CmpOpEq, binary.BigEndian.AppendUint16(nil, r.Port))
	}
	if r.ICMPv6 != 0 {
		e = append(e, &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1})
		cmp(expr.CmpOpEq, []byte{r.ICMPv6})
	}
	return append(e, verdict(r.Verdict)...), nil
}

func verdict(v string) []expr.Any {
	switch v {
	case "masquerade":
		return []expr.Any{&expr.Masq{}}
	case "drop":
		return []expr.Any{&expr.Verdict{Kind: expr.VerdictDrop}}
	}
	return []expr.Any{&expr.Verdict{Kind: expr.VerdictAccept}}
}

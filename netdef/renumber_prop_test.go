package netdef

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

// genDef writes a random valid NAT network: random quoting, spacing and
// comments; an IPv4 subnet with DHCP range, static hosts, DNS hosts, a
// forwarder, routes inside and outside; sometimes an IPv6 subnet too.
func genDef(rng *rand.Rand) (string, netip.Prefix, netip.Prefix) {
	q := func() string { return []string{"'", `"`}[rng.IntN(2)] }
	sp := func() string { return []string{" ", "  ", "\n    ", "\t"}[rng.IntN(4)] }
	attr := func(name, val string) string {
		eq := []string{"=", " = ", "="}[rng.IntN(3)]
		qq := q()
		return sp() + name + eq + qq + val + qq
	}
	comment := func() string {
		if rng.IntN(3) == 0 {
			return fmt.Sprintf("<!-- c%d <ip address='1.2.3.4'/> -->", rng.IntN(100))
		}
		return ""
	}
	bits := 16 + rng.IntN(13)
	v4 := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(rng.IntN(256)), byte(rng.IntN(256)), byte(rng.IntN(256))}), bits).Masked()
	size := 1 << (32 - bits)
	at := func(p netip.Prefix, off int) string {
		a := p.Addr()
		for range off {
			a = a.Next()
		}
		return a.String()
	}
	var b strings.Builder
	b.WriteString("<network" + attr("xmlns:dnsmasq", "http://libvirt.org/schemas/network/dnsmasq/1.0") + ">" + comment() + "\n")
	b.WriteString("  <name>gen</name>\n  <metadata><vg:policy xmlns:vg='urn:x-vnetguard:policy:1' on-conflict='renumber'/><x:y xmlns:x='urn:x'>1.2.3.4</x:y></metadata>\n")
	b.WriteString("  <forward" + attr("mode", "nat") + "/>" + comment() + "\n")
	b.WriteString("  <dns>")
	for range rng.IntN(3) {
		b.WriteString("<host" + attr("ip", at(v4, 2+rng.IntN(size-3))) + "><hostname>h</hostname></host>")
	}
	if rng.IntN(2) == 0 {
		b.WriteString("<forwarder" + attr("addr", at(v4, 1)) + "/>")
	}
	b.WriteString("<forwarder" + attr("addr", "192.0.2.53") + "/></dns>\n")
	mask := attr("prefix", fmt.Sprint(bits))
	if rng.IntN(2) == 0 {
		mask = attr("netmask", netmaskString(bits))
	}
	b.WriteString("  <ip" + attr("address", at(v4, 1)) + mask + ">" + comment() + "<dhcp>")
	if size >= 8 {
		s := 2 + rng.IntN(size/2-1)
		e := s + rng.IntN(min(size-2-s, 60000))
		b.WriteString("<range" + attr("start", at(v4, s)) + attr("end", at(v4, e)) + "/>")
	}
	for i := range rng.IntN(3) {
		b.WriteString(fmt.Sprintf("<host%s%s/>", attr("mac", fmt.Sprintf("52:54:00:00:00:%02x", i)), attr("ip", at(v4, 2+rng.IntN(size-3)))))
	}
	b.WriteString("<bootp" + attr("file", "pxe") + attr("server", at(v4, 1)) + "/></dhcp></ip>\n")
	b.WriteString("  <route" + attr("address", "172.16.0.0") + attr("prefix", "12") + attr("gateway", at(v4, 1+rng.IntN(size-2))) + "/>\n")
	if bits <= 26 {
		sub := netip.PrefixFrom(v4.Addr(), bits+1+rng.IntN(2))
		if rng.IntN(2) == 0 {
			sub = netip.PrefixFrom(netip.MustParseAddr(at(v4, size/2)), bits+1)
		}
		b.WriteString("  <route" + attr("address", sub.Addr().String()) + attr("prefix", fmt.Sprint(sub.Bits())) + attr("gateway", at(v4, 2)) + "/>\n")
	}
	var v6 netip.Prefix
	if rng.IntN(2) == 0 {
		var a [16]byte
		a[0] = 0xfd
		for i := 1; i < 8; i++ {
			a[i] = byte(rng.IntN(256))
		}
		v6 = netip.PrefixFrom(netip.AddrFrom16(a), 64)
		b.WriteString("  <ip" + attr("family", "ipv6") + attr("address", at(v6, 1)) + attr("prefix", "64") + "><dhcp>")
		b.WriteString("<range" + attr("start", at(v6, 0x100)) + attr("end", at(v6, 0x1ff)) + "/>")
		b.WriteString("<host" + attr("id", "0:1") + attr("ip", at(v6, 0x10)) + "/></dhcp></ip>\n")
	}
	b.WriteString("  <dnsmasq:options><dnsmasq:option" + attr("value", "log-queries") + "/></dnsmasq:options>" + comment() + "\n</network>\n")
	return b.String(), v4, v6
}

// movedFields lists, in a fixed order, every value Renumber may rewrite,
// and blanks it in n so the rest of two models can be compared whole.
func movedFields(n *Network) (addrs, masks []string) {
	take := func(s *string) { addrs = append(addrs, *s); *s = "" }
	if n.DNS != nil {
		for i := range n.DNS.Hosts {
			take(&n.DNS.Hosts[i].IP)
		}
		for i := range n.DNS.Forwarders {
			take(&n.DNS.Forwarders[i].Addr)
		}
	}
	for i := range n.IPs {
		ip := &n.IPs[i]
		take(&ip.Address)
		masks = append(masks, ip.Netmask+"/"+ip.Prefix)
		ip.Netmask, ip.Prefix = "", ""
		if ip.DHCP != nil {
			for j := range ip.DHCP.Ranges {
				take(&ip.DHCP.Ranges[j].Start)
				take(&ip.DHCP.Ranges[j].End)
			}
			for j := range ip.DHCP.Hosts {
				take(&ip.DHCP.Hosts[j].IP)
			}
			if ip.DHCP.Bootp != nil {
				take(&ip.DHCP.Bootp.Server)
			}
		}
	}
	for i := range n.Routes {
		take(&n.Routes[i].Address)
		take(&n.Routes[i].Gateway)
	}
	return addrs, masks
}

func TestRenumberPropertyGenerated(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	moved, refused := 0, 0
	for i := 0; i < 1500; i++ {
		src, v4, v6 := genDef(rng)
		d, err := Parse([]byte(src))
		if err != nil {
			t.Fatalf("generated definition does not parse: %v\n%s", err, src)
		}
		if probs := d.Validate(); len(probs) != 0 {
			t.Fatalf("generated definition invalid: %v\n%s", probs, src)
		}
		// identity: byte-identical
		if out, _, err := d.Renumber([]Move{{v4, v4}}); err != nil || !bytes.Equal(out, d.Raw) {
			t.Fatalf("identity move changed bytes: %v", err)
		}
		bits := min(max(v4.Bits()+rng.IntN(7)-3, 8), 30)
		to := netip.PrefixFrom(netip.AddrFrom4([4]byte{100, byte(64 + rng.IntN(64)), byte(rng.IntN(256)), byte(rng.IntN(256))}), bits).Masked()
		moves := []Move{{v4, to}}
		if v6.IsValid() && rng.IntN(2) == 0 {
			moves = append(moves, Move{v6, netip.MustParsePrefix(fmt.Sprintf("fd99:%x:%x:%x00::/56", rng.IntN(65536), rng.IntN(65536), rng.IntN(256)))})
		}
		out, notes, err := d.Renumber(moves)
		if err != nil {
			if to.Bits() <= v4.Bits() {
				t.Fatalf("a move to an equal or larger subnet failed: %v\n%s", err, src)
			}
			refused++
			continue
		}
		moved++
		nd, err := Parse(out)
		if err != nil {
			t.Fatalf("output does not parse: %v", err)
		}
		if probs := nd.Validate(); len(probs) != 0 {
			t.Fatalf("output invalid: %v\n%s", probs, out)
		}
		if len(notes) > 0 && to.Bits() <= v4.Bits() {
			t.Fatalf("notes for a move that needs no clamp: %v", notes)
		}
		// checkModel blanks fields in place, and the models share slices:
		// give it copies of its own.
		oc, _ := Parse(d.Raw)
		nc, _ := Parse(out)
		checkModel(t, oc.Network, nc.Network, moves, src, string(out))
		if to.Bits() == v4.Bits() && len(moves) == 1 {
			back, _, err := nd.Renumber([]Move{{to, v4}})
			if err != nil || !bytes.Equal(back, d.Raw) {
				t.Fatalf("there and back is not the original (%v):\n%s", err, diffLines(src, string(back)))
			}
		}
	}
	if moved < 500 || refused == 0 {
		t.Fatalf("generator covers too little: %d moved, %d refused", moved, refused)
	}
}

// checkModel: the new model equals the old one except for moved values,
// and each moved value is the old one with its host part kept (DHCP range
// ends may instead be clamped into the new subnet).
func checkModel(t *testing.T, old, new Network, moves []Move, src, out string) {
	t.Helper()
	oldAddrs, _ := movedFields(&old)
	newAddrs, newMasks := movedFields(&new)
	if !reflect.DeepEqual(old, new) {
		t.Fatalf("something besides addresses changed:\n%s", diffLines(src, out))
	}
	for i := range oldAddrs {
		o, n := netip.MustParseAddr(oldAddrs[i]), netip.MustParseAddr(newAddrs[i])
		var m *Move
		for j := range moves {
			if moves[j].From.Contains(o) {
				m = &moves[j]
			}
		}
		if m == nil {
			if n != o {
				t.Fatalf("%s is outside every moved subnet but became %s", o, n)
			}
			continue
		}
		want, ok := moveAddr(o, *m)
		if ok && n == want {
			continue
		}
		// Only a DHCP range end may differ: clamped into the usable part.
		if first, last := usable(m.To); ok || n.Less(first) || last.Less(n) {
			t.Fatalf("%s became %s, want %s (host part kept) or a clamp into %s", o, n, want, m.To)
		}
	}
	// IPs[0] is the IPv4 <ip>, IPs[1] the IPv6 one.
	for _, m := range moves {
		i, want := 1, "/"+fmt.Sprint(m.To.Bits())
		if m.From.Addr().Is4() {
			i, want = 0, netmaskString(m.To.Bits())+"/"
		}
		if got := newMasks[i]; got != want && got != "/"+fmt.Sprint(m.To.Bits()) {
			t.Fatalf("<ip> %d netmask/prefix %q after moving to %s", i, got, m.To)
		}
	}
}

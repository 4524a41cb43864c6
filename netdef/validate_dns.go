package netdef

import (
	"fmt"
	"strings"
)

// Characters libvirt allows in SRV service and protocol names ('.' would
// clash with the record's field separator).
const (
	srvProtocolChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-+/"
	srvServiceChars  = srvProtocolChars + "_*"
	srvServiceMax    = 512 - 30 // RFC 2782's record limit less overhead, as libvirt
)

func (v *validator) dns() {
	d := v.n.DNS
	if d == nil {
		return
	}
	const dp = "network/dns[0]"
	v.yesNo(dp, "enable", d.Enable)
	v.yesNo(dp, "forwardPlainNames", d.ForwardPlainNames)
	if d.Enable == "no" && len(d.Forwarders)+len(d.TXTs)+len(d.Hosts)+len(d.SRVs) > 0 {
		v.add(dp, "a disabled <dns> (enable='no') must have no forwarders or records")
	}
	for i, f := range d.Forwarders {
		p := fmt.Sprintf("%s/forwarder[%d]", dp, i)
		if f.Addr != "" {
			if _, err := parseAddr(f.Addr); err != nil {
				v.add(p, "forwarder addr %q is not an IP address", f.Addr)
			}
		} else if f.Domain == "" {
			v.add(p, "a forwarder needs addr or domain")
		}
	}
	for i, h := range d.Hosts {
		p := fmt.Sprintf("%s/host[%d]", dp, i)
		if h.IP == "" {
			v.add(p, "a dns host needs an ip")
		} else if _, err := parseAddr(h.IP); err != nil {
			v.add(p, "dns host ip %q is not an IP address", h.IP)
		}
		if len(h.Hostnames) == 0 {
			v.add(p, "a dns host needs at least one <hostname>")
		}
		for j, name := range h.Hostnames {
			if name == "" {
				v.add(fmt.Sprintf("%s/hostname[%d]", p, j), "a hostname must not be empty")
			}
		}
	}
	for i, t := range d.TXTs {
		p := fmt.Sprintf("%s/txt[%d]", dp, i)
		if t.Name == "" || strings.ContainsAny(t.Name, " ,") {
			v.add(p, "a txt record needs a name without spaces or commas")
		}
		if t.Value == "" {
			v.add(p, "a txt record needs a value")
		}
	}
	for i, s := range d.SRVs {
		v.srv(fmt.Sprintf("%s/srv[%d]", dp, i), s)
	}
}

func (v *validator) srv(p string, s DNSSRV) {
	switch {
	case s.Service == "":
		v.add(p, "an srv record needs a service")
	case len(s.Service) > srvServiceMax:
		v.add(p, "srv service is longer than %d bytes", srvServiceMax)
	case strings.Trim(s.Service, srvServiceChars) != "":
		v.add(p, "srv service %q holds a character libvirt does not allow", s.Service)
	}
	switch {
	case s.Protocol == "":
		v.add(p, "an srv record needs a protocol")
	case strings.Trim(s.Protocol, srvProtocolChars) != "":
		v.add(p, "srv protocol %q holds a character libvirt does not allow", s.Protocol)
	}
	for _, f := range []struct {
		name, val string
		min       uint64
	}{{"port", s.Port, 1}, {"priority", s.Priority, 0}, {"weight", s.Weight, 0}} {
		n, ok := v.unsigned(p, f.name, f.val, 32)
		if !ok {
			continue
		}
		if s.Target == "" {
			v.add(p, "srv %s needs a target", f.name)
		}
		if n < f.min || n > 65535 {
			v.add(p, "srv %s %d must be from %d to 65535", f.name, n, f.min)
		}
	}
}

package guard

import "github.com/vnetguard/vnetguard/conflict"

// WithExtra is a Host whose view also holds entries learnt elsewhere (the
// dispatcher's environment), for the moment before netlink shows them.
type WithExtra struct {
	Host
	Extra conflict.HostView
}

// Read returns the underlying view plus the extra entries not already in it.
func (w WithExtra) Read() (conflict.HostView, map[string][]string, error) {
	v, ports, err := w.Host.Read()
	if err != nil {
		return v, ports, err
	}
	seenA := map[conflict.HostAddress]bool{}
	for _, a := range v.Addresses {
		seenA[a] = true
	}
	for _, a := range w.Extra.Addresses {
		if !seenA[a] {
			v.Addresses = append(v.Addresses, a)
		}
	}
	type routeKey struct {
		dst   string
		iface string
	}
	seenR := map[routeKey]bool{}
	for _, r := range v.Routes {
		seenR[routeKey{r.Dst.String(), r.Interface}] = true
	}
	for _, r := range w.Extra.Routes {
		if !seenR[routeKey{r.Dst.String(), r.Interface}] {
			v.Routes = append(v.Routes, r)
		}
	}
	return v, ports, nil
}

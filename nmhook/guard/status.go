package guard

import (
	"context"
	"net/netip"

	"github.com/vnetguard/vnetguard/conflict"
	"github.com/vnetguard/vnetguard/nmhook/state"
	"github.com/vnetguard/vnetguard/netdef"
)

// NetworkStatus is one line of `vnetguard status`.
type NetworkStatus struct {
	Name           string              `json:"name"`
	Source         string              `json:"source"`
	Active         bool                `json:"active"`
	Policy         netdef.OnConflict   `json:"policy"`
	DefinedSubnets []netip.Prefix      `json:"defined_subnets"`
	LiveSubnets    []netip.Prefix      `json:"live_subnets"`
	Conflicts      []conflict.Conflict `json:"conflicts"`
	LastAction     *state.Action       `json:"last_action"`
	Error          string              `json:"error,omitempty"`
}

// Status reports every libvirt network, active or only defined, with its
// current conflicts and the last action vnetguard took on it.
func (r *Resolver) Status(ctx context.Context) ([]NetworkStatus, error) {
	s, err := r.read(ctx, true)
	if err != nil {
		return nil, err
	}
	mem := &state.Memory{}
	if r.Config.CacheDir != "" {
		if mem, err = state.LoadMemory(r.Config.CacheDir); err != nil {
			r.log().Warn("remembered state unreadable", "error", err)
		}
	}
	out := make([]NetworkStatus, 0, len(s.networks))
	for _, n := range s.networks {
		st := NetworkStatus{Name: n.Name, Source: "libvirt", Active: n.Active,
			DefinedSubnets: []netip.Prefix{}, LiveSubnets: []netip.Prefix{}, Conflicts: []conflict.Conflict{}}
		p := s.parsed[n.Name]
		if p.err != nil {
			st.Error = p.err.Error()
			out = append(out, st)
			continue
		}
		st.Policy = r.policyOf(p)
		if p.defined != nil {
			st.DefinedSubnets = p.defined.Network.Subnets()
		}
		if n.Active {
			st.LiveSubnets = p.live.Network.Subnets()
		} else if p.defined == nil {
			st.DefinedSubnets = p.live.Network.Subnets()
		}
		found, err := r.conflictsOf(s, n)
		if err != nil {
			st.Error = err.Error()
		} else if found != nil {
			st.Conflicts = found
		}
		if nm := mem.Networks[n.Name]; nm != nil {
			st.LastAction = nm.LastAction
		}
		out = append(out, st)
	}
	return out, nil
}

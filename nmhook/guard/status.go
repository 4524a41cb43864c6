package guard

import (
	"context"
	"net/netip"

	"github.com/vnetguard/vnetguard/conflict"
	"github.com/vnetguard/vnetguard/netdef"
	"github.com/vnetguard/vnetguard/nmhook/state"
)

// NetworkStatus is one line of `vnetguard status`.
type NetworkStatus struct {
	Name           string              `json:"name"`
	Backend        string              `json:"backend"`
	Active         bool                `json:"active"`
	Policy         netdef.OnConflict   `json:"policy"`
	DefinedSubnets []netip.Prefix      `json:"defined_subnets"`
	LiveSubnets    []netip.Prefix      `json:"live_subnets"`
	Conflicts      []conflict.Conflict `json:"conflicts"`
	LastAction     *state.Action       `json:"last_action"`
	Error          string              `json:"error,omitempty"`
}

// Status reports every network of every backend, running or only defined,
// with its conflicts and the last action vnetguard took on it. Like every
// run, it first finishes what an interrupted run left half done.
func (g *Guard) Status(ctx context.Context) ([]NetworkStatus, []Outcome, error) {
	recovered := g.Recover(ctx)
	s, err := g.read(ctx, true)
	if err != nil {
		return nil, recovered, err
	}
	set := g.Settings()
	mem, err := state.LoadMemory(set.CacheDir)
	if err != nil {
		g.Log.Warn("remembered state unreadable", "error", err)
	}
	out := make([]NetworkStatus, 0, len(s.networks))
	for _, n := range s.networks {
		st := NetworkStatus{Name: n.Name, Backend: n.Backend, Active: n.Active,
			DefinedSubnets: []netip.Prefix{}, LiveSubnets: []netip.Prefix{}, Conflicts: []conflict.Conflict{}}
		if n.Err != nil {
			st.Error = n.Err.Error()
			out = append(out, st)
			continue
		}
		st.Policy = policyOf(n, set.DefaultPolicy)
		if n.Defined != nil {
			st.DefinedSubnets = n.Defined.Network.Subnets()
		}
		if found := s.conflictsOf(n); found != nil {
			st.Conflicts = found
		}
		if n.Active {
			st.LiveSubnets = n.Live.Network.Subnets()
		} else if n.Defined == nil {
			st.DefinedSubnets = n.Live.Network.Subnets()
		}
		if nm := mem.Networks[n.Name]; nm != nil {
			st.LastAction = nm.LastAction
		}
		out = append(out, st)
	}
	return out, recovered, nil
}

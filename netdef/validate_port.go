package netdef

import "fmt"

var virtualPortTypes = map[string]bool{"802.1Qbg": true, "802.1Qbh": true, "openvswitch": true, "midonet": true}

// portgroups checks each portgroup and the network-wide rules on vlan and
// bandwidth that depend on the forward mode.
func (v *validator) portgroups() {
	n, mode := v.n, v.mode
	bandwidthOK := mode == "" || l3Modes[mode] || (mode == "bridge" && n.BridgeName() != "")
	if n.Bandwidth != nil && !bandwidthOK {
		v.add("network/bandwidth[0]", "a network-wide <bandwidth> is not allowed with forward mode %s", mode)
	}
	vlanOK := mode == "hostdev" || mode == "passthrough" ||
		(mode == "bridge" && n.VirtualPort != nil && n.VirtualPort.Type == "openvswitch")
	vlanUsed := n.VLAN != nil && len(n.VLAN.Tags) > 0
	badVLAN := false
	names := map[string]bool{}
	hasDefault := false
	for i, pg := range n.PortGroups {
		path := fmt.Sprintf("network/portgroup[%d]", i)
		if pg.Name == "" {
			v.add(path, "a portgroup needs a name")
		} else if names[pg.Name] {
			v.add(path, "portgroup name %q is used twice", pg.Name)
		}
		names[pg.Name] = true
		v.yesNo(path, "trustGuestRxFilters", pg.TrustGuestRxFilters)
		if pg.Default == "yes" {
			if hasDefault {
				v.add(path, "only one portgroup may be the default")
			}
			hasDefault = true
		}
		if pg.VirtualPort != nil {
			v.virtualPort(path+"/virtualport[0]", pg.VirtualPort, false)
		}
		if pg.VLAN != nil {
			v.vlan(path+"/vlan[0]", pg.VLAN)
		}
		if pg.Bandwidth != nil {
			v.bandwidth(path+"/bandwidth[0]", pg.Bandwidth)
			if !bandwidthOK || mode == "hostdev" {
				v.add(path+"/bandwidth[0]", "portgroup <bandwidth> is not allowed with forward mode %s", mode)
			}
		}
		// Whoever uses this portgroup gets a vlan tag: that needs a
		// connection type that supports one.
		if vlanUsed || (pg.VLAN != nil && len(pg.VLAN.Tags) > 0) {
			if pg.VirtualPort != nil {
				badVLAN = badVLAN || mode != "bridge" || pg.VirtualPort.Type != "openvswitch"
			} else if !vlanOK {
				badVLAN = true
			}
		}
	}
	if badVLAN || (vlanUsed && !vlanOK && !hasDefault) {
		v.add("network", "<vlan> needs forward mode hostdev or passthrough, or a bridge with an openvswitch virtualport")
	}
}

func (v *validator) virtualPort(path string, vp *VirtualPort, needType bool) {
	switch {
	case vp.Type == "" && needType:
		v.add(path, "a network's <virtualport> needs a type")
	case vp.Type != "" && !virtualPortTypes[vp.Type]:
		v.add(path, "virtualport type %q must be 802.1Qbg, 802.1Qbh, openvswitch or midonet", vp.Type)
	}
}

func (v *validator) vlan(path string, vl *VLAN) {
	v.yesNo(path, "trunk", vl.Trunk)
	if len(vl.Tags) == 0 {
		v.add(path, "a <vlan> needs at least one <tag id>")
	}
	if vl.Trunk == "no" && len(vl.Tags) > 1 {
		v.add(path, "trunk='no' is not allowed with more than one tag")
	}
	natives := 0
	for i, t := range vl.Tags {
		p := fmt.Sprintf("%s/tag[%d]", path, i)
		if id, ok := v.unsigned(p, "id", t.ID, 32); !ok || id > 4095 {
			v.add(p, "a vlan tag needs an id from 0 to 4095")
		}
		switch t.NativeMode {
		case "":
		case "tagged", "untagged":
			natives++
			if natives == 2 {
				v.add(p, "only one vlan tag may have a nativeMode")
			}
			if vl.Trunk == "no" {
				v.add(p, "trunk='no' is not allowed with a native vlan")
			}
		default:
			v.add(p, "nativeMode %q must be tagged or untagged", t.NativeMode)
		}
	}
}

// bandwidth follows libvirt for networks and portgroups: floor is not
// supported there, average or floor is required, peak and burst need
// average.
func (v *validator) bandwidth(path string, b *Bandwidth) {
	for _, r := range []struct {
		name string
		rate *Rate
	}{{"inbound", b.Inbound}, {"outbound", b.Outbound}} {
		if r.rate == nil {
			continue
		}
		p := path + "/" + r.name + "[0]"
		for _, a := range []struct{ name, val string }{{"average", r.rate.Average}, {"peak", r.rate.Peak}, {"burst", r.rate.Burst}, {"floor", r.rate.Floor}} {
			v.unsigned(p, a.name, a.val, 64)
		}
		if r.rate.Average == "" && r.rate.Floor == "" {
			v.add(p, "%s needs an average", r.name)
		}
		if (r.rate.Peak != "" || r.rate.Burst != "") && r.rate.Average == "" {
			v.add(p, "peak and burst need an average")
		}
		if r.rate.Floor != "" {
			v.add(p, "floor is not supported in a network's or portgroup's <bandwidth>")
		}
	}
}

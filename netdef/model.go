// Package netdef models libvirt network definitions (the network XML
// format), validates them with libvirt's rules, reads vnetguard's policy
// from their metadata, and renumbers them losslessly: only the values that
// belong to a moved subnet change, every other byte stays.
package netdef

import "encoding/xml"

// Network is a <network> definition. Every element and attribute of
// libvirt's format has a field; anything else is kept in Extra/ExtraAttrs
// (unknown children and attributes) at every level. Values are kept as
// written (strings), so the model never loses or normalises what the file
// says; Validate judges them.
type Network struct {
	XMLName             xml.Name   `xml:"network"`
	IPv6                string     `xml:"ipv6,attr,omitempty"`
	TrustGuestRxFilters string     `xml:"trustGuestRxFilters,attr,omitempty"`
	Connections         string     `xml:"connections,attr,omitempty"`
	AutoAddr            string     `xml:"autoaddr,attr,omitempty"` // vnetguard's own files: yes = renumber
	ExtraAttrs          []xml.Attr `xml:",any,attr"`

	Name        string       `xml:"name"`
	UUID        string       `xml:"uuid,omitempty"`
	Title       string       `xml:"title,omitempty"`
	Description string       `xml:"description,omitempty"`
	Metadata    *Metadata    `xml:"metadata"`
	Forward     *Forward     `xml:"forward"`
	Bridge      *Bridge      `xml:"bridge"`
	MAC         *MAC         `xml:"mac"`
	MTU         *MTU         `xml:"mtu"`
	Domain      *Domain      `xml:"domain"`
	DNS         *DNS         `xml:"dns"`
	IPs         []IP         `xml:"ip"`
	Routes      []Route      `xml:"route"`
	PortGroups  []PortGroup  `xml:"portgroup"`
	Bandwidth   *Bandwidth   `xml:"bandwidth"`
	VLAN        *VLAN        `xml:"vlan"`
	VirtualPort *VirtualPort `xml:"virtualport"`
	Port        *Port        `xml:"port"`
	Dnsmasq     *Dnsmasq     `xml:"http://libvirt.org/schemas/network/dnsmasq/1.0 options"`
	Extra       []Any        `xml:",any"`
}

// Metadata is kept verbatim (libvirt does the same); vnetguard's own
// policy elements are also decoded, with namespaces resolved wherever the
// prefix was declared.
type Metadata struct {
	Inner    string          `xml:",innerxml"`
	Policies []PolicyElement `xml:"urn:x-vnetguard:policy:1 policy"`
	// ProxyNDP holds <vnetguard:proxy-ndp/> (see Network.ProxyNDP).
	ProxyNDP []struct{} `xml:"urn:x-vnetguard:policy:1 proxy-ndp"`
}

// PolicyElement is <vnetguard:policy on-conflict="..."/>.
type PolicyElement struct {
	OnConflict string `xml:"on-conflict,attr"`
}

// Any is an element this model does not know, kept whole.
type Any struct {
	XMLName xml.Name
	Attrs   []xml.Attr `xml:",any,attr"`
	Inner   string     `xml:",innerxml"`
}

type Forward struct {
	Mode       string             `xml:"mode,attr,omitempty"` // nat, route, open, bridge, private, vepa, passthrough, hostdev
	Dev        string             `xml:"dev,attr,omitempty"`
	Managed    string             `xml:"managed,attr,omitempty"`
	NAT        *NAT               `xml:"nat"`
	Interfaces []ForwardInterface `xml:"interface"`
	PFs        []ForwardPF        `xml:"pf"`
	Addresses  []ForwardAddress   `xml:"address"`
	Driver     *ForwardDriver     `xml:"driver"`
	Extra      []Any              `xml:",any"`
	ExtraAttrs []xml.Attr         `xml:",any,attr"`
}

type NAT struct {
	IPv6       string     `xml:"ipv6,attr,omitempty"`
	Addresses  []NATRange `xml:"address"`
	Ports      []NATPorts `xml:"port"`
	Extra      []Any      `xml:",any"`
	ExtraAttrs []xml.Attr `xml:",any,attr"`
}

type NATRange struct {
	Start      string     `xml:"start,attr,omitempty"`
	End        string     `xml:"end,attr,omitempty"`
	Extra      []Any      `xml:",any"`
	ExtraAttrs []xml.Attr `xml:",any,attr"`
}

type NATPorts struct {
	Start      string     `xml:"start,attr,omitempty"`
	End        string     `xml:"end,attr,omitempty"`
	Extra      []Any      `xml:",any"`
	ExtraAttrs []xml.Attr `xml:",any,attr"`
}

type ForwardInterface struct {
	Dev         string     `xml:"dev,attr,omitempty"`
	Connections string     `xml:"connections,attr,omitempty"` // live XML only
	Extra       []Any      `xml:",any"`
	ExtraAttrs  []xml.Attr `xml:",any,attr"`
}

type ForwardPF struct {
	Dev         string     `xml:"dev,attr,omitempty"`
	Connections string     `xml:"connections,attr,omitempty"` // live XML only
	Extra       []Any      `xml:",any"`
	ExtraAttrs  []xml.Attr `xml:",any,attr"`
}

// ForwardAddress is a PCI address of an SR-IOV function (hostdev mode).
type ForwardAddress struct {
	Type       string     `xml:"type,attr,omitempty"`
	Domain     string     `xml:"domain,attr,omitempty"`
	Bus        string     `xml:"bus,attr,omitempty"`
	Slot       string     `xml:"slot,attr,omitempty"`
	Function   string     `xml:"function,attr,omitempty"`
	Extra      []Any      `xml:",any"`
	ExtraAttrs []xml.Attr `xml:",any,attr"`
}

type ForwardDriver struct {
	Name       string     `xml:"name,attr,omitempty"`
	Extra      []Any      `xml:",any"`
	ExtraAttrs []xml.Attr `xml:",any,attr"`
}

type Bridge struct {
	Name            string     `xml:"name,attr,omitempty"`
	STP             string     `xml:"stp,attr,omitempty"`
	Delay           string     `xml:"delay,attr,omitempty"`
	MACTableManager string     `xml:"macTableManager,attr,omitempty"`
	Zone            string     `xml:"zone,attr,omitempty"`
	Extra           []Any      `xml:",any"`
	ExtraAttrs      []xml.Attr `xml:",any,attr"`
}

type MAC struct {
	Address    string     `xml:"address,attr"`
	Extra      []Any      `xml:",any"`
	ExtraAttrs []xml.Attr `xml:",any,attr"`
}

type MTU struct {
	Size       string     `xml:"size,attr"`
	Extra      []Any      `xml:",any"`
	ExtraAttrs []xml.Attr `xml:",any,attr"`
}

type Domain struct {
	Name       string     `xml:"name,attr,omitempty"`
	LocalOnly  string     `xml:"localOnly,attr,omitempty"`
	Register   string     `xml:"register,attr,omitempty"`
	Extra      []Any      `xml:",any"`
	ExtraAttrs []xml.Attr `xml:",any,attr"`
}

type DNS struct {
	Enable            string         `xml:"enable,attr,omitempty"`
	ForwardPlainNames string         `xml:"forwardPlainNames,attr,omitempty"`
	Forwarders        []DNSForwarder `xml:"forwarder"`
	TXTs              []DNSTXT       `xml:"txt"`
	Hosts             []DNSHost      `xml:"host"`
	SRVs              []DNSSRV       `xml:"srv"`
	Extra             []Any          `xml:",any"`
	ExtraAttrs        []xml.Attr     `xml:",any,attr"`
}

type DNSForwarder struct {
	Addr       string     `xml:"addr,attr,omitempty"`
	Domain     string     `xml:"domain,attr,omitempty"`
	Extra      []Any      `xml:",any"`
	ExtraAttrs []xml.Attr `xml:",any,attr"`
}

type DNSTXT struct {
	Name       string     `xml:"name,attr"`
	Value      string     `xml:"value,attr"`
	Extra      []Any      `xml:",any"`
	ExtraAttrs []xml.Attr `xml:",any,attr"`
}

type DNSHost struct {
	IP         string     `xml:"ip,attr"`
	Hostnames  []string   `xml:"hostname"`
	Extra      []Any      `xml:",any"`
	ExtraAttrs []xml.Attr `xml:",any,attr"`
}

type DNSSRV struct {
	Service    string     `xml:"service,attr"`
	Protocol   string     `xml:"protocol,attr"`
	Domain     string     `xml:"domain,attr,omitempty"`
	Target     string     `xml:"target,attr,omitempty"`
	Port       string     `xml:"port,attr,omitempty"`
	Priority   string     `xml:"priority,attr,omitempty"`
	Weight     string     `xml:"weight,attr,omitempty"`
	Extra      []Any      `xml:",any"`
	ExtraAttrs []xml.Attr `xml:",any,attr"`
}

type IP struct {
	Family     string     `xml:"family,attr,omitempty"`
	Address    string     `xml:"address,attr,omitempty"`
	Netmask    string     `xml:"netmask,attr,omitempty"`
	Prefix     string     `xml:"prefix,attr,omitempty"`
	LocalPtr   string     `xml:"localPtr,attr,omitempty"`
	TFTP       *TFTP      `xml:"tftp"`
	DHCP       *DHCP      `xml:"dhcp"`
	Extra      []Any      `xml:",any"`
	ExtraAttrs []xml.Attr `xml:",any,attr"`
}

type TFTP struct {
	Root       string     `xml:"root,attr"`
	Extra      []Any      `xml:",any"`
	ExtraAttrs []xml.Attr `xml:",any,attr"`
}

type DHCP struct {
	Ranges     []DHCPRange `xml:"range"`
	Hosts      []DHCPHost  `xml:"host"`
	Bootp      *Bootp      `xml:"bootp"`
	Extra      []Any       `xml:",any"`
	ExtraAttrs []xml.Attr  `xml:",any,attr"`
}

type DHCPRange struct {
	Start      string     `xml:"start,attr"`
	End        string     `xml:"end,attr"`
	Lease      *Lease     `xml:"lease"`
	Extra      []Any      `xml:",any"`
	ExtraAttrs []xml.Attr `xml:",any,attr"`
}

type DHCPHost struct {
	MAC        string     `xml:"mac,attr,omitempty"`
	ID         string     `xml:"id,attr,omitempty"`
	Name       string     `xml:"name,attr,omitempty"`
	IP         string     `xml:"ip,attr,omitempty"`
	Lease      *Lease     `xml:"lease"`
	Extra      []Any      `xml:",any"`
	ExtraAttrs []xml.Attr `xml:",any,attr"`
}

// Lease is a DHCP lease time; expiry 0 means infinite, unit defaults to
// minutes.
type Lease struct {
	Expiry     string     `xml:"expiry,attr"`
	Unit       string     `xml:"unit,attr,omitempty"`
	Extra      []Any      `xml:",any"`
	ExtraAttrs []xml.Attr `xml:",any,attr"`
}

type Bootp struct {
	File       string     `xml:"file,attr"`
	Server     string     `xml:"server,attr,omitempty"`
	Extra      []Any      `xml:",any"`
	ExtraAttrs []xml.Attr `xml:",any,attr"`
}

type Route struct {
	Family     string     `xml:"family,attr,omitempty"`
	Address    string     `xml:"address,attr"`
	Prefix     string     `xml:"prefix,attr,omitempty"`
	Netmask    string     `xml:"netmask,attr,omitempty"`
	Gateway    string     `xml:"gateway,attr"`
	Metric     string     `xml:"metric,attr,omitempty"`
	Extra      []Any      `xml:",any"`
	ExtraAttrs []xml.Attr `xml:",any,attr"`
}

type PortGroup struct {
	Name                string       `xml:"name,attr"`
	Default             string       `xml:"default,attr,omitempty"`
	TrustGuestRxFilters string       `xml:"trustGuestRxFilters,attr,omitempty"`
	VLAN                *VLAN        `xml:"vlan"`
	VirtualPort         *VirtualPort `xml:"virtualport"`
	Bandwidth           *Bandwidth   `xml:"bandwidth"`
	Extra               []Any        `xml:",any"`
	ExtraAttrs          []xml.Attr   `xml:",any,attr"`
}

type Bandwidth struct {
	Inbound    *Rate      `xml:"inbound"`
	Outbound   *Rate      `xml:"outbound"`
	Extra      []Any      `xml:",any"`
	ExtraAttrs []xml.Attr `xml:",any,attr"`
}

type Rate struct {
	Average    string     `xml:"average,attr,omitempty"`
	Peak       string     `xml:"peak,attr,omitempty"`
	Burst      string     `xml:"burst,attr,omitempty"`
	Floor      string     `xml:"floor,attr,omitempty"`
	Extra      []Any      `xml:",any"`
	ExtraAttrs []xml.Attr `xml:",any,attr"`
}

type VLAN struct {
	Trunk      string     `xml:"trunk,attr,omitempty"`
	Tags       []VLANTag  `xml:"tag"`
	Extra      []Any      `xml:",any"`
	ExtraAttrs []xml.Attr `xml:",any,attr"`
}

type VLANTag struct {
	ID         string     `xml:"id,attr"`
	NativeMode string     `xml:"nativeMode,attr,omitempty"`
	Extra      []Any      `xml:",any"`
	ExtraAttrs []xml.Attr `xml:",any,attr"`
}

type VirtualPort struct {
	Type       string             `xml:"type,attr,omitempty"`
	Parameters *VirtualPortParams `xml:"parameters"`
	Extra      []Any              `xml:",any"`
	ExtraAttrs []xml.Attr         `xml:",any,attr"`
}

type VirtualPortParams struct {
	Attrs []xml.Attr `xml:",any,attr"` // managerid, typeid, profileid, interfaceid...
}

type Port struct {
	Isolated   string     `xml:"isolated,attr,omitempty"`
	Extra      []Any      `xml:",any"`
	ExtraAttrs []xml.Attr `xml:",any,attr"`
}

// Dnsmasq holds <dnsmasq:options>, libvirt's pass-through to dnsmasq.
type Dnsmasq struct {
	Options    []DnsmasqOption `xml:"http://libvirt.org/schemas/network/dnsmasq/1.0 option"`
	Extra      []Any           `xml:",any"`
	ExtraAttrs []xml.Attr      `xml:",any,attr"`
}

type DnsmasqOption struct {
	Value      string     `xml:"value,attr"`
	Extra      []Any      `xml:",any"`
	ExtraAttrs []xml.Attr `xml:",any,attr"`
}

// Package config reads /etc/vnetguard/vnetguard.conf, a keyfile in the
// format NetworkManager's own configuration uses ([section] key=value, #
// comments, lists separated by ';').
package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"gopkg.in/ini.v1"

	"github.com/vnetguard/vnetguard/conflict"
	"github.com/vnetguard/vnetguard/netdef"
)

// DefaultPath is where packages install the configuration.
const DefaultPath = "/etc/vnetguard/vnetguard.conf"

// Config is vnetguard's configuration.
type Config struct {
	DefaultPolicy netdef.OnConflict // for networks whose XML names none
	IPv6          bool              // allocate and renumber IPv6 subnets
	Hypervisor    string            // auto, yes, no: the 192.168.N count direction
	Pools4        []conflict.Pool   // IPv4 candidate pools, in order; nil = defaults
	Reserved      []netip.Prefix    // never handed out
	Ignore        []string          // network names never touched
	Debounce      time.Duration     // quiet time after an event before a re-read
	DampingWindow time.Duration     // a network moves at most once per window
}

// Default is the configuration without a file.
func Default() Config {
	return Config{
		DefaultPolicy: netdef.Destroy,
		IPv6:          true,
		Hypervisor:    "auto",
		Debounce:      300 * time.Millisecond,
		DampingWindow: 10 * time.Second,
	}
}

// known lists the accepted keys per section; anything else is an error,
// so a typo never silently falls back to a default.
var known = map[string][]string{
	ini.DefaultSection: {},
	"main":             {"default-policy", "ipv6", "hypervisor", "ignore", "reserve"},
	"pools":            {"ipv4"},
	"watch":            {"debounce", "damping-window"},
}

// Load reads path; a missing file gives the defaults.
func Load(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Default(), nil
	}
	if err != nil {
		return Default(), err
	}
	c, err := Parse(b)
	if err != nil {
		return c, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Parse reads a configuration from bytes.
func Parse(data []byte) (Config, error) {
	c := Default()
	f, err := ini.LoadSources(ini.LoadOptions{IgnoreInlineComment: true, KeyValueDelimiters: "="}, data)
	if err != nil {
		return c, err
	}
	for _, sec := range f.Sections() {
		keys, ok := known[sec.Name()]
		if !ok {
			return c, fmt.Errorf("unknown section [%s]", sec.Name())
		}
		for _, k := range sec.Keys() {
			if !contains(keys, k.Name()) {
				return c, fmt.Errorf("[%s]: unknown key %q", sec.Name(), k.Name())
			}
		}
	}
	main := f.Section("main")
	if v := main.Key("default-policy").String(); v != "" {
		switch p := netdef.OnConflict(v); p {
		case netdef.Renumber, netdef.Destroy, netdef.Warn:
			c.DefaultPolicy = p
		default:
			return c, fmt.Errorf("[main] default-policy=%s: want renumber, destroy or warn", v)
		}
	}
	if v := main.Key("ipv6").String(); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return c, fmt.Errorf("[main] ipv6=%s: want true or false", v)
		}
		c.IPv6 = b
	}
	if v := main.Key("hypervisor").String(); v != "" {
		switch v {
		case "auto", "yes", "no":
			c.Hypervisor = v
		default:
			return c, fmt.Errorf("[main] hypervisor=%s: want auto, yes or no", v)
		}
	}
	c.Ignore = list(main.Key("ignore").String())
	for _, s := range list(main.Key("reserve").String()) {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return c, fmt.Errorf("[main] reserve: %q is not a prefix", s)
		}
		c.Reserved = append(c.Reserved, p.Masked())
	}
	for _, s := range list(f.Section("pools").Key("ipv4").String()) {
		p, err := parsePool(s)
		if err != nil {
			return c, fmt.Errorf("[pools] ipv4: %w", err)
		}
		c.Pools4 = append(c.Pools4, p)
	}
	watch := f.Section("watch")
	for _, d := range []struct {
		key string
		dst *time.Duration
		max time.Duration
	}{{"debounce", &c.Debounce, 10 * time.Second}, {"damping-window", &c.DampingWindow, time.Hour}} {
		v := watch.Key(d.key).String()
		if v == "" {
			continue
		}
		t, err := time.ParseDuration(v)
		if err != nil || t < 0 || t > d.max {
			return c, fmt.Errorf("[watch] %s=%s: want a duration from 0 to %v, like 500ms", d.key, v, d.max)
		}
		*d.dst = t
	}
	return c, nil
}

// parsePool reads PREFIX:BITS, e.g. 10.0.0.0/8:24 (the pool and the size
// of the subnets carved from it).
func parsePool(s string) (conflict.Pool, error) {
	pfx, bitsStr, ok := strings.Cut(s, ":")
	if !ok {
		return conflict.Pool{}, fmt.Errorf("%q: want PREFIX:BITS, like 10.0.0.0/8:24", s)
	}
	p, err := netip.ParsePrefix(pfx)
	if err != nil || !p.Addr().Is4() {
		return conflict.Pool{}, fmt.Errorf("%q: %q is not an IPv4 prefix", s, pfx)
	}
	bits, err := strconv.Atoi(bitsStr)
	if err != nil || bits < p.Bits() || bits > 30 {
		return conflict.Pool{}, fmt.Errorf("%q: subnet size /%s must lie between /%d and /30", s, bitsStr, p.Bits())
	}
	return conflict.Pool{Prefix: p.Masked(), Bits: bits}, nil
}

// list splits a NetworkManager-style list: ';' separated, ',' accepted too.
func list(s string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ';' || r == ',' }) {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

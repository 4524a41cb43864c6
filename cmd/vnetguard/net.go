package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vnetguard/vnetguard/netdef"
	"github.com/vnetguard/vnetguard/nmhook/backend"
	"github.com/vnetguard/vnetguard/nmhook/backend/profiles"
	"github.com/vnetguard/vnetguard/nmhook/config"
	"github.com/vnetguard/vnetguard/nmhook/firewall"
	"github.com/vnetguard/vnetguard/nmhook/nm"
	"github.com/vnetguard/vnetguard/nmhook/state"
)

func init() {
	register("net", "vnetguard's own networks: define, undefine, start, stop, autostart, list", runNet)
}

// networksDirEnv overrides the definitions directory for every command
// (the guard's too), as --networks-dir does for `net`.
const networksDirEnv = "VNETGUARD_NETWORKS_DIR"

// networksDir is where vnetguard's own definitions live.
func networksDir() string {
	if d := os.Getenv(networksDirEnv); d != "" {
		return d
	}
	return profiles.DefaultDir
}

// newProfiles makes the backend of vnetguard's own networks, with its
// firewall.
func newProfiles(dir, runDir string, env *runEnv, cmd string) *profiles.Backend {
	return profilesBackend(dir, runDir, cliLog(env, cmd))
}

// profilesBackend is the backend of vnetguard's own networks with what it
// runs beside the profiles: its nftables table, radvds, dnsmasqs and
// proxy NDP entries.
func profilesBackend(dir, runDir string, log *slog.Logger) *profiles.Backend {
	b := profiles.New(dir, runDir, log)
	b.Firewall = firewall.Table{}
	b.RA = profiles.Radvd{Dir: filepath.Join(runDir, "radvd")}
	b.DHCP = profiles.Dnsmasq{Dir: filepath.Join(runDir, "dnsmasq")}
	b.Proxy = profiles.ProxyNDP{Dir: filepath.Join(runDir, "proxy-ndp")}
	return b
}

const netAbout = `
Manage vnetguard's own virtual networks: definitions in libvirt's network XML
format kept in the networks directory (NAME.xml), realised as NetworkManager
bridge profiles marked as vnetguard's.

  net define FILE              store FILE as NAME.xml and make its profile
  net undefine NAME            stop it, delete its profile and definition
  net start NAME               activate it (NetworkManager makes the bridge)
  net stop NAME                deactivate it (the bridge goes), rules removed
  net autostart NAME [--disable]  start it with NetworkManager, or not
  net list [--json]            every network: state, bridge, subnets, DHCP path

A network with autoaddr='yes' and no <ip> gets free subnets at define time
(an IPv4 /24 from the pools, an IPv6 /64 of the host's ULA /48, each when
the host has that family), kept in its stored definition.

Forward modes: nat, route (no NAT), open (no rules), none (isolated), and
bridge with <interface dev='UPLINK'/> (the uplink becomes a port of bridge
brUPLINK, which takes the host's addressing; net stop gives it back).

A nat network with a DHCP range becomes ipv4.method=shared (NetworkManager's
dnsmasq and NAT); an IPv6 /64 becomes ipv6.method=shared (router
advertisements); a network without IPv6 has IPv6 disabled on its bridge.
Forwarding rules of vnetguard's own live in the nftables table inet vnetguard.`

func runNet(env *runEnv, args []string) int {
	fs := newFlags(env, "net", "SUBCOMMAND [ARGS] [OPTIONS]", netAbout)
	dir := fs.String("networks-dir", networksDir(), "where the definitions are kept (env "+networksDirEnv+")")
	runDir := fs.String("lock-dir", "/run/vnetguard", "runtime directory shared by all vnetguard runs: locks, live XML, records of unfinished changes")
	asJSON := fs.Bool("json", false, "net list: print JSON")
	disable := fs.Bool("disable", false, "net autostart: turn autostart off")
	timeout := fs.Duration("timeout", 60*time.Second, "give up after this long")
	// net define of an autoaddr='yes' network without <ip> chooses its
	// subnets as the guard would.
	ro := resolverOptions{fs: fs}
	fs.StringVar(&ro.configPath, "config", config.DefaultPath, "net define: configuration file (pools, IPv6, reserved ranges) for autoaddr='yes'")
	ro.alloc.register(fs)
	if code := parseFlags(env, fs, args); code >= 0 {
		return code
	}
	ro.runDir = *runDir
	if fs.NArg() == 0 {
		return fail(env, "net", errors.New("missing subcommand: define, undefine, start, stop, autostart or list (see --help)"))
	}
	sub, rest := fs.Arg(0), fs.Args()[1:]
	cmd := "net " + sub
	want := 1
	if sub == "list" {
		want = 0
	}
	if len(rest) != want {
		return fail(env, cmd, fmt.Errorf("want %d argument(s), got %d (see vnetguard net --help)", want, len(rest)))
	}
	b := newProfiles(*dir, *runDir, env, cmd)
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()

	if sub == "list" {
		return netList(env, ctx, b, *asJSON)
	}
	arg := rest[0]
	name := arg
	var def *netdef.Definition
	if sub == "define" {
		d, err := netdef.ParseFile(arg)
		if err == nil {
			err = checkDefinition(d)
		}
		if err != nil {
			fmt.Fprintf(env.stderr, "vnetguard %s: %v\n", cmd, err)
			return exitFound
		}
		def, name = d, d.Network.Name
	} else if !b.Store.Exists(name) {
		return fail(env, cmd, fmt.Errorf("no network %q in %s", name, *dir))
	}
	// The same lock the guard takes before it acts on the network.
	unlock, err := state.Lock(ctx, *runDir, profiles.Name+"-"+name)
	if err != nil {
		return fail(env, cmd, err)
	}
	defer unlock()
	var chosen []netip.Prefix
	if sub == "define" && needsAutoAddr(def) {
		if def, chosen, err = autoAddress(ctx, &ro, def, b, cliLog(env, cmd)); err != nil {
			return fail(env, cmd, fmt.Errorf("autoaddr='yes': %w", explainNM(err)))
		}
	}
	switch sub {
	case "define":
		err = b.Define(ctx, def)
	case "undefine":
		err = b.Undefine(ctx, name)
	case "start":
		err = b.Start(ctx, name)
	case "stop":
		err = b.Stop(ctx, name)
	case "autostart":
		err = b.SetAutostart(ctx, name, !*disable)
	default:
		return fail(env, "net", fmt.Errorf("unknown subcommand %q (see --help)", sub))
	}
	if err != nil {
		return fail(env, cmd, explainNM(err))
	}
	done := map[string]string{"define": "defined", "undefine": "undefined", "start": "started", "stop": "stopped", "autostart": "set to autostart"}[sub]
	if sub == "autostart" && *disable {
		done = "no longer autostarted"
	}
	if len(chosen) > 0 {
		done += " on " + joinPrefixes(chosen) + " (chosen for autoaddr='yes', kept in its stored definition)"
	}
	fmt.Fprintf(env.stdout, "network %s %s\n", name, done)
	return exitOK
}

func netList(env *runEnv, ctx context.Context, b *profiles.Backend, asJSON bool) int {
	infos, err := b.List(ctx)
	if err != nil {
		return fail(env, "net list", explainNM(err))
	}
	code := exitOK
	for _, i := range infos {
		if i.Error != "" {
			code = exitFound
		}
	}
	if asJSON {
		if infos == nil {
			infos = []profiles.Info{}
		}
		if err := writeJSON(env.stdout, infos); err != nil {
			return fail(env, "net list", err)
		}
		return code
	}
	tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tACTIVE\tAUTOSTART\tMODE\tBRIDGE\tSUBNETS\tDHCP\tRA")
	for _, i := range infos {
		ra := i.RA
		if ra == "" {
			ra = "none"
		}
		fmt.Fprintf(tw, "%s\t%v\t%v\t%s\t%s\t%s\t%s\t%s\n", i.Name, i.Active, i.Autostart, i.Mode, i.Bridge, joinPrefixes(i.Subnets), i.DHCP, ra)
	}
	tw.Flush()
	for _, i := range infos {
		for _, n := range i.Notes {
			fmt.Fprintf(env.stdout, "note: %s: %s\n", i.Name, n)
		}
		if i.Error != "" {
			fmt.Fprintf(env.stdout, "error: %s: %s\n", i.Name, strings.ReplaceAll(i.Error, "\n", "; "))
		}
	}
	return code
}

// explainNM adds a hint when NetworkManager is not there.
func explainNM(err error) error {
	if errors.Is(err, nm.ErrUnavailable) {
		return fmt.Errorf("%w\n(vnetguard's own networks are NetworkManager profiles; is NetworkManager running?)", err)
	}
	if errors.Is(err, backend.ErrNotFound) {
		return err
	}
	return err
}

// ownNetworks is the profiles backend for the guard, when any definitions
// directory exists (without NetworkManager it reports them stopped).
func ownNetworks(runDir string, log *slog.Logger) (backend.Backend, bool) {
	dir := networksDir()
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return nil, false
	}
	return profilesBackend(dir, runDir, log), true
}

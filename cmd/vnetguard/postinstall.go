package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	libvirt "github.com/digitalocean/go-libvirt"
	"github.com/digitalocean/go-libvirt/socket/dialers"

	"github.com/vnetguard/vnetguard/conflict"
	"github.com/vnetguard/vnetguard/netdef"
	"github.com/vnetguard/vnetguard/netdef/libvirt/rpc"
)

func init() {
	register("postinstall", "for package scripts: define the default network on a free subnet, or defer that to first boot", runPostinstall)
}

// firstBootUnit is the oneshot unit that runs 'postinstall --first-boot' at
// the first boot of an image the package was installed into.
const (
	firstBootUnit = "vnetguard-firstboot.service"
	firstBootDone = "postinstall.done" // in --state-dir; the unit's condition
)

// deferReason says why this is an image build or a chroot, where the
// subnet must not be chosen (the networks seen here are not the ones the
// machine will have): "" when this is a live, booted host. root is the
// file system of the running system ("/" but in tests).
func deferReason(getenv func(string) string, root fs.FS) string {
	if r := getenv("DPKG_ROOT"); r != "" && r != "/" {
		return "DPKG_ROOT is set (installing into " + r + ")"
	}
	if getenv("SYSTEMD_OFFLINE") == "1" {
		return "SYSTEMD_OFFLINE=1 (an offline image build)"
	}
	if st, err := fs.Stat(root, "run/systemd/system"); err != nil || !st.IsDir() {
		return "systemd is not running (no /run/systemd/system): a chroot or an image build"
	}
	id, err := fs.ReadFile(root, "etc/machine-id")
	switch s := strings.TrimSpace(string(id)); {
	case err != nil:
		return "/etc/machine-id is missing: an image not booted yet"
	case s == "" || s == "uninitialized":
		return "/etc/machine-id is " + map[bool]string{true: "empty", false: "uninitialized"}[s == ""] + ": an image not booted yet"
	}
	return ""
}

// enableFirstBoot enables the first-boot unit under root the way
// 'systemctl enable' would (the link its [Install] section asks for),
// which works in a chroot and an image without systemd running. It
// returns whether it made the link.
func enableFirstBoot(root string) (bool, error) {
	wants := filepath.Join(root, "etc/systemd/system/multi-user.target.wants")
	link := filepath.Join(wants, firstBootUnit)
	target := "/usr/lib/systemd/system/" + firstBootUnit
	if dst, err := os.Readlink(link); err == nil && dst == target {
		return false, nil
	}
	if err := os.MkdirAll(wants, 0o755); err != nil {
		return false, err
	}
	os.Remove(link)
	if err := os.Symlink(target, link); err != nil {
		return false, err
	}
	return true, nil
}

// defaultNetworkXML is libvirt's default network (NAT, DHCP over the whole
// subnet) on subnet, under vnetguard's renumber policy. The bridge name is
// left to libvirt (the first free virbrN).
func defaultNetworkXML(name string, subnet netip.Prefix) string {
	base := subnet.Masked().Addr()
	gw := base.Next()
	first := gw.Next()
	last := lastHost(subnet)
	mask := netmask(subnet.Bits())
	return fmt.Sprintf(`<network>
  <name>%s</name>
  <metadata>
    <vnetguard:policy xmlns:vnetguard="urn:x-vnetguard:policy:1" on-conflict="renumber"/>
  </metadata>
  <forward mode='nat'/>
  <bridge stp='on' delay='0'/>
  <ip address='%s' netmask='%s'>
    <dhcp>
      <range start='%s' end='%s'/>
    </dhcp>
  </ip>
</network>
`, name, gw, mask, first, last)
}

// lastHost is the last address below the broadcast address of an IPv4 subnet.
func lastHost(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v |= (1 << (32 - p.Bits())) - 1
	v--
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

func netmask(bits int) netip.Addr {
	v := ^uint32(0) << (32 - bits)
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// validName: a libvirt network name vnetguard will write into XML as is.
func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

func runPostinstall(env *runEnv, args []string) int {
	fs := newFlags(env, "postinstall", "[--network NAME] [--dry-run] [--start] [--first-boot]", `
For the maintainer scripts of packages that ship a default virtual network.
In an image build or a chroot (DPKG_ROOT set, SYSTEMD_OFFLINE=1, no
/run/systemd/system, /etc/machine-id missing or "uninitialized") it only
enables vnetguard-firstboot.service, which runs 'postinstall --first-boot'
when the machine first boots. On a live host it chooses a subnet that
nothing on the host uses (--prefer first if free, then 192.168.N.0/24
counting down on bare metal and up inside a VM, then 10/8 and 172.16/12),
avoiding every other libvirt network, and defines the network through
libvirt with the renumber policy, NAT and DHCP, set to autostart.
A network libvirt already has is never touched: running it twice changes
nothing. Without libvirt it does nothing.`)
	var host hostOptions
	var alloc allocOptions
	name := fs.String("network", "default", "the libvirt network to define")
	prefer := fs.String("prefer", "192.168.122.0/24", "the subnet to take when it is free (libvirt's usual one)")
	dryRun := fs.Bool("dry-run", false, "say what would be done, change nothing")
	start := fs.Bool("start", false, "also start the network once defined")
	firstBoot := fs.Bool("first-boot", false, "run at first boot (the unit): no image or chroot check; record success in --state-dir")
	timeout := fs.Duration("timeout", 30*time.Second, "how long to wait for libvirt")
	host.register(fs)
	alloc.register(fs)
	if code := parseFlags(env, fs, args); code >= 0 {
		return code
	}
	if fs.NArg() > 0 {
		return fail(env, "postinstall", fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}
	if !validName(*name) {
		return fail(env, "postinstall", fmt.Errorf("--network %q: want letters, digits, '-', '_' or '.'", *name))
	}
	preferred, err := parseSubnetFlag("--prefer", *prefer)
	if err != nil {
		return fail(env, "postinstall", err)
	}
	if !preferred.Addr().Is4() || preferred.Bits() > 30 {
		return fail(env, "postinstall", fmt.Errorf("--prefer %s: want an IPv4 subnet of /30 or larger", preferred))
	}

	if !*firstBoot {
		if why := deferReason(os.Getenv, os.DirFS("/")); why != "" {
			root := "/"
			if r := os.Getenv("DPKG_ROOT"); r != "" {
				root = r
			}
			if *dryRun {
				fmt.Fprintf(env.stdout, "deferred: %s; would enable %s to choose network %s's subnet at first boot\n", why, firstBootUnit, *name)
				return exitOK
			}
			made, err := enableFirstBoot(root)
			if err != nil {
				return fail(env, "postinstall", fmt.Errorf("enable %s: %w", firstBootUnit, err))
			}
			what := "enabled"
			if !made {
				what = "already enabled"
			}
			fmt.Fprintf(env.stdout, "deferred: %s; %s %s to choose network %s's subnet at first boot\n", why, what, firstBootUnit, *name)
			return exitOK
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	conn, err := rpc.Dial(ctx)
	if err != nil {
		if errors.Is(err, rpc.ErrUnavailable) {
			fmt.Fprintf(env.stdout, "libvirt is not running here: network %s not defined\n", *name)
			return exitOK
		}
		return fail(env, "postinstall", err)
	}
	defer conn.Close()
	if n, err := conn.Network(ctx, *name, false); err == nil {
		fmt.Fprintf(env.stdout, "network %s is already defined (%s); left as it is\n", *name, describeSubnets(n.LiveXML))
		return markDone(env, *firstBoot, *dryRun, alloc.stateDir)
	} else if !errors.Is(err, rpc.ErrNotFound) {
		return fail(env, "postinstall", err)
	}

	actx, err := alloc.resolve(false)
	if err != nil {
		return fail(env, "postinstall", err)
	}
	nets, err := conn.Networks(ctx, true)
	if err != nil {
		return fail(env, "postinstall", err)
	}
	for _, n := range nets {
		for _, x := range []string{n.LiveXML, n.DefinedXML} {
			if d, err := netdef.Parse([]byte(x)); err == nil {
				actx.others = append(actx.others, d.Network.Subnets()...)
			}
		}
	}
	view, _, err := host.read()
	if err != nil {
		return fail(env, "postinstall", err)
	}
	req := conflict.Request{Family: conflict.IPv4, Bits: preferred.Bits(), Direction: actx.direction,
		Usable: actx.usable, Network: *name, Remembered: []netip.Prefix{preferred.Masked()}}
	occ := conflict.NewOccupied(conflict.NewIndex(view), actx.others, actx.reserved)
	subnet, err := occ.Allocate(req)
	if err != nil {
		return fail(env, "postinstall", err)
	}
	xml := defaultNetworkXML(*name, subnet)
	if *dryRun {
		fmt.Fprintf(env.stdout, "would define network %s on %s (%s):\n%s", *name, subnet, actx.evidence, xml)
		return exitOK
	}
	if err := conn.DefineNetworkXML(ctx, xml); err != nil {
		return fail(env, "postinstall", err)
	}
	fmt.Fprintf(env.stdout, "defined network %s on %s (%s), renumbered by vnetguard on a clash\n", *name, subnet, actx.evidence)
	if err := autostartNetwork(ctx, *name, *start); err != nil {
		return fail(env, "postinstall", err)
	}
	return markDone(env, *firstBoot, false, alloc.stateDir)
}

// describeSubnets names a network's subnets for a message.
func describeSubnets(xml string) string {
	d, err := netdef.Parse([]byte(xml))
	if err != nil || len(d.Network.Subnets()) == 0 {
		return "no subnet"
	}
	var s []string
	for _, p := range d.Network.Subnets() {
		s = append(s, p.String())
	}
	return strings.Join(s, ", ")
}

// markDone records a first boot's success, which the unit's condition reads.
func markDone(env *runEnv, firstBoot, dryRun bool, stateDir string) int {
	if !firstBoot || dryRun {
		return exitOK
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return fail(env, "postinstall", err)
	}
	if err := os.WriteFile(filepath.Join(stateDir, firstBootDone), []byte("done\n"), 0o600); err != nil {
		return fail(env, "postinstall", err)
	}
	return exitOK
}

// autostartNetwork marks a network to start with libvirt and, when start,
// starts it now. The rpc package has no call for these: a connection of
// its own, closed politely.
func autostartNetwork(ctx context.Context, name string, start bool) error {
	sock, uri := filepath.Join(rpc.DefaultRunDir, "virtnetworkd-sock"), libvirt.ConnectURI("network:///system")
	if _, err := os.Stat(sock); err != nil {
		sock, uri = filepath.Join(rpc.DefaultRunDir, "libvirt-sock"), libvirt.QEMUSystem
	}
	timeout := 10 * time.Second
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	l := libvirt.NewWithDialer(dialers.NewLocal(dialers.WithSocket(sock), dialers.WithLocalTimeout(timeout)))
	if err := l.ConnectToURI(uri); err != nil {
		return fmt.Errorf("libvirt: %w", err)
	}
	defer l.Disconnect()
	n, err := l.NetworkLookupByName(name)
	if err != nil {
		return fmt.Errorf("libvirt: look up network %s: %w", name, err)
	}
	if err := l.NetworkSetAutostart(n, 1); err != nil {
		return fmt.Errorf("libvirt: autostart network %s: %w", name, err)
	}
	if start {
		if err := l.NetworkCreate(n); err != nil {
			return fmt.Errorf("libvirt: start network %s: %w", name, err)
		}
	}
	return nil
}

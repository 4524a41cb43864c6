package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/spf13/pflag"

	"github.com/vnetguard/vnetguard/conflict"
	"github.com/vnetguard/vnetguard/nmhook/config"
	"github.com/vnetguard/vnetguard/nmhook/guard"
	"github.com/vnetguard/vnetguard/netdef"
	"github.com/vnetguard/vnetguard/netdef/libvirtdbus"
)

// resolverOptions are the flags of the commands that act on libvirt.
// Flags left unset take their value from the configuration file.
type resolverOptions struct {
	alloc         allocOptions
	configPath    string
	defaultPolicy string
	lockDir       string
	ignore        []string
	timeout       time.Duration
	fs            *pflag.FlagSet
	cfg           config.Config
}

func (o *resolverOptions) register(fs *pflag.FlagSet) {
	o.fs = fs
	fs.StringVar(&o.configPath, "config", config.DefaultPath, "configuration file (a missing file means the defaults)")
	fs.StringVar(&o.defaultPolicy, "default-policy", "", "what to do with a clashing network whose XML names no policy: renumber, destroy or warn (default: the configuration's default-policy, shipped as destroy)")
	fs.StringArrayVar(&o.ignore, "ignore", nil, "a network name never to touch (repeatable; adds to the configuration's)")
	fs.StringVar(&o.lockDir, "lock-dir", "/run/vnetguard", "where per-network locks shared by all vnetguard runs live")
	fs.DurationVar(&o.timeout, "timeout", 60*time.Second, "give up on libvirt and the host after this long")
	o.alloc.register(fs)
}

// exitCodeFor maps an error: libvirt absent and other runtime errors are 2.
func exitCodeFor(err error) int {
	if err == nil {
		return exitOK
	}
	return exitError
}

// newResolver connects to libvirt-dbus; the caller closes the client.
// applyConfig reads the configuration file and fills in the flags the user
// did not set.
func (o *resolverOptions) applyConfig() error {
	cfg, err := config.Load(o.configPath)
	if err != nil {
		return err
	}
	o.cfg = cfg
	if !o.changed("default-policy") {
		o.defaultPolicy = string(cfg.DefaultPolicy)
	}
	if !o.changed("hypervisor") {
		o.alloc.hypervisor = cfg.Hypervisor
	}
	return nil
}

func (o *resolverOptions) changed(flag string) bool { return o.fs != nil && o.fs.Changed(flag) }

func (o *resolverOptions) newResolver(env *runEnv, dryRun bool) (*guard.Resolver, *libvirtdbus.Client, error) {
	if err := o.applyConfig(); err != nil {
		return nil, nil, err
	}
	pol := netdef.OnConflict(o.defaultPolicy)
	switch pol {
	case netdef.Renumber, netdef.Destroy, netdef.Warn:
	default:
		return nil, nil, fmt.Errorf("--default-policy %q: want renumber, destroy or warn", o.defaultPolicy)
	}
	ctx, err := o.alloc.resolve(o.cfg.IPv6)
	if err != nil {
		return nil, nil, err
	}
	if !o.cfg.IPv6 {
		ctx.usable[conflict.IPv6] = false
	}
	client, err := libvirtdbus.Dial()
	if err != nil {
		return nil, nil, err
	}
	r := &guard.Resolver{
		Libvirt: client,
		Host:    guard.NetlinkHost{},
		Config: guard.Config{
			DefaultPolicy: pol,
			Direction:     ctx.direction,
			Pools:         o.cfg.Pools4,
			// --avoid files and --reserve ranges are both simply not
			// handed out.
			Reserved: slices.Concat(ctx.reserved, ctx.others, o.cfg.Reserved),
			ULA:      ctx.ula,
			Usable:   ctx.usable,
			CacheDir: o.alloc.cacheDir,
			LockDir:  o.lockDir,
			Ignore:   append(slices.Clone(o.ignore), o.cfg.Ignore...),
			DryRun:   dryRun,
			Log:      slog.New(slog.NewTextHandler(env.stderr, nil)),
		},
	}
	return r, client, nil
}

func (o *resolverOptions) context() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), o.timeout)
}

// explainLibvirt adds a hint when libvirt is not there at all.
func explainLibvirt(err error) error {
	if errors.Is(err, libvirtdbus.ErrUnavailable) {
		return fmt.Errorf("%w\n(is libvirtd running, and libvirt-dbus installed? nothing was changed)", err)
	}
	return err
}

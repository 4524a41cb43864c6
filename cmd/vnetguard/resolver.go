package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"time"

	"github.com/spf13/pflag"

	"github.com/vnetguard/vnetguard/conflict"
	"github.com/vnetguard/vnetguard/netdef"
	"github.com/vnetguard/vnetguard/netdef/libvirt/rpc"
	"github.com/vnetguard/vnetguard/nmhook/backend/libvirt"
	"github.com/vnetguard/vnetguard/nmhook/config"
	"github.com/vnetguard/vnetguard/nmhook/guard"
	"github.com/vnetguard/vnetguard/nmhook/hostview"
)

// resolverOptions are the flags of the commands that act on networks.
// Flags left unset take their value from the configuration file.
type resolverOptions struct {
	alloc         allocOptions
	configPath    string
	defaultPolicy string
	runDir        string
	ignore        []string
	timeout       time.Duration
	fs            *pflag.FlagSet
}

func (o *resolverOptions) register(fs *pflag.FlagSet) {
	o.fs = fs
	fs.StringVar(&o.configPath, "config", config.DefaultPath, "configuration file (a missing file means the defaults)")
	fs.StringVar(&o.defaultPolicy, "default-policy", "", "what to do with a clashing network whose XML names no policy: renumber, destroy or warn (default: the configuration's default-policy, shipped as destroy)")
	fs.StringArrayVar(&o.ignore, "ignore", nil, "a network name never to touch (repeatable; adds to the configuration's)")
	fs.StringVar(&o.runDir, "lock-dir", "/run/vnetguard", "runtime directory shared by all vnetguard runs: per-network locks and records of unfinished changes (root's, mode 0700)")
	fs.DurationVar(&o.timeout, "timeout", 60*time.Second, "give up on libvirt and the host after this long")
	o.alloc.register(fs)
}

func (o *resolverOptions) changed(flag string) bool { return o.fs != nil && o.fs.Changed(flag) }

// settings assembles the guard's settings from the flags and the
// configuration file: the one place they are put together, at start and
// again on every reload.
func (o *resolverOptions) settings(dryRun bool) (guard.Settings, config.Config, error) {
	cfg, err := config.Load(o.configPath)
	if err != nil {
		return guard.Settings{}, cfg, err
	}
	policy := string(cfg.DefaultPolicy)
	if o.changed("default-policy") {
		policy = o.defaultPolicy
	}
	pol := netdef.OnConflict(policy)
	switch pol {
	case netdef.Renumber, netdef.Destroy, netdef.Warn:
	default:
		return guard.Settings{}, cfg, fmt.Errorf("--default-policy %q: want renumber, destroy or warn", policy)
	}
	alloc := o.alloc
	if !o.changed("hypervisor") && cfg.Hypervisor != "" {
		alloc.hypervisor = cfg.Hypervisor
	}
	ctx, err := alloc.resolveKeepingIPv4(cfg.IPv6)
	if err != nil {
		return guard.Settings{}, cfg, err
	}
	if !cfg.IPv6 {
		ctx.usable[conflict.IPv6] = false
	}
	return guard.Settings{
		DefaultPolicy: pol,
		Direction:     ctx.direction,
		Pools:         cfg.Pools4,
		// --avoid files and --reserve ranges are both simply not handed out.
		Reserved:      slices.Concat(ctx.reserved, ctx.others, cfg.Reserved),
		ULA:           ctx.ula,
		Usable:        ctx.usable,
		CacheDir:      o.alloc.cacheDir,
		LockDir:       o.runDir,
		Ignore:        slices.Concat(o.ignore, cfg.Ignore),
		DryRun:        dryRun,
		DampingWindow: cfg.DampingWindow,
	}, cfg, nil
}

// newGuard assembles the guard with its backends; the caller closes it.
func (o *resolverOptions) newGuard(log *slog.Logger, dryRun bool) (*guard.Guard, config.Config, error) {
	set, cfg, err := o.settings(dryRun)
	if err != nil {
		return nil, cfg, err
	}
	lv := libvirt.New(filepath.Join(o.runDir, "intents"), log)
	backends := []guard.Backend{lv}
	// vnetguard's own networks (net.go), when a definitions directory exists.
	if own, ok := ownNetworks(o.runDir, log); ok {
		backends = append(backends, own)
	}
	return guard.New(set, hostview.Live{}, log, backends...), cfg, nil
}

func (o *resolverOptions) context() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), o.timeout)
}

// explainLibvirt adds a hint when libvirt is not there at all.
func explainLibvirt(err error) error {
	if errors.Is(err, rpc.ErrUnavailable) {
		return fmt.Errorf("%w\n%s", err, libvirtHint)
	}
	return err
}

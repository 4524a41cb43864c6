//go:build lab

package e2e

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/vnetguard/vnetguard/nmhook/backend/profiles"
	"github.com/vnetguard/vnetguard/nmhook/nm"
	"github.com/vnetguard/vnetguard/scripts/labkit"
)

// The NetworkManager calls a renumber rests on, against the real daemon: a
// checkpoint on a running network's bridge, new addresses reapplied (the
// bridge keeps its port), then a rollback: the old address is back, the
// port still in the bridge, no checkpoint left.
func TestOwnNetCheckpointRollback(t *testing.T) {
	labkit.Require(t)
	o := newOwnNet(t)
	const name, br = "owncp", "ownbr4"
	o.define(t, name, ownXML(name, br, "nat", "10.237.0", "", ""))
	o.net(t, "start", name)
	t.Cleanup(func() { vnetguard(t, o.env(), "net", "stop", name, "--lock-dir", o.run) })
	g := labkit.NewGuest(t, "ogcp", br)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := nm.Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	dev, ok, err := c.DeviceByIface(ctx, br)
	if err != nil || !ok {
		t.Fatalf("device %s: %v %v", br, ok, err)
	}
	cp, err := c.CheckpointCreate(ctx, []dbus.ObjectPath{dev}, 60*time.Second, nm.CheckpointAllowOverlapping)
	if err != nil {
		t.Fatal(err)
	}
	applied, version, err := c.AppliedConnection(ctx, dev)
	if err != nil {
		t.Fatal(err)
	}
	p := profiles.Profile{IPv4Method: "shared", IPv6Method: "disabled", IPv4: []netip.Prefix{netip.MustParsePrefix("10.238.0.1/24")}}
	if err := c.Reapply(ctx, dev, profiles.WithAddresses(applied, p), version); err != nil {
		t.Fatal(err)
	}
	addrIs := func(a string) func() bool {
		return func() bool {
			out, _ := labkit.Try("ip", "-4", "-br", "addr", "show", "dev", br)
			return strings.Contains(out, a)
		}
	}
	labkit.Eventually(t, 10*time.Second, "the reapplied address on "+br, addrIs("10.238.0.1/24"))
	t0 := time.Now()
	if err := c.CheckpointRollback(ctx, cp); err != nil {
		t.Fatal(err)
	}
	labkit.Eventually(t, 10*time.Second, "the old address back on "+br, addrIs("10.237.0.1/24"))
	t.Logf("rollback to the old address took %v", time.Since(t0))
	if out := labkit.Run(t, "ip", "-o", "link", "show", "dev", g.Port()); !strings.Contains(out, "master "+br) {
		t.Fatalf("guest port left the bridge after the rollback: %s", out)
	}
	if cps, err := c.Checkpoints(); err != nil || len(cps) != 0 {
		t.Fatalf("checkpoints after rollback: %v %v", cps, err)
	}
}

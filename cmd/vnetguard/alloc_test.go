package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vnetguard/vnetguard/conflict"
	"github.com/vnetguard/vnetguard/nmhook/state"
)

// corruptULA returns a state directory whose ula-prefix holds garbage.
func corruptULA(t *testing.T) string {
	t.Helper()
	if !usableFamilies()[conflict.IPv6] {
		t.Skip("no IPv6 on this host: the ULA is never read")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, state.ULAFile), []byte("garbage\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

func wayOut(stateDir string) string {
	p := filepath.Join(stateDir, state.ULAFile)
	return "remove " + p + " to make a new one, or write a valid fdXX:XXXX:XXXX::/48 in it"
}

// A corrupt ula-prefix made every command that guards networks fail
// (status, resolve, hook, watch), IPv4-only networks included: now it
// only takes IPv6 allocation away.
func TestCorruptULAKeepsTheGuardGoing(t *testing.T) {
	stateDir := corruptULA(t)
	o := resolverOptions{configPath: filepath.Join(t.TempDir(), "none.conf"), runDir: t.TempDir()}
	o.alloc = allocOptions{hypervisor: "no", stateDir: stateDir, cacheDir: t.TempDir()}
	set, _, err := o.settings(true)
	if err != nil {
		t.Fatalf("settings with a corrupt ULA file: %v", err)
	}
	if !set.Usable[conflict.IPv4] || set.Usable[conflict.IPv6] {
		t.Errorf("usable = %v, want IPv4 only", set.Usable)
	}
	if b, _ := os.ReadFile(filepath.Join(stateDir, state.ULAFile)); string(b) != "garbage\n" {
		t.Errorf("the ULA file was changed: %q", b)
	}
}

func TestCorruptULAErrorSaysHowToRecover(t *testing.T) {
	stateDir := corruptULA(t)
	o := allocOptions{hypervisor: "no", stateDir: stateDir, cacheDir: t.TempDir()}
	ctx, err := o.resolveAll(true)
	if err != nil {
		t.Fatal(err)
	}
	if ctx.ulaErr == nil || !strings.Contains(ctx.ulaErr.Error(), wayOut(stateDir)) {
		t.Errorf("ulaErr = %v, want the way out", ctx.ulaErr)
	}
	if _, err := o.resolve(true); err == nil || !strings.Contains(err.Error(), wayOut(stateDir)) {
		t.Errorf("a command that needs the ULA: err = %v, want the way out", err)
	}
	if ctx, err := o.resolve(false); err != nil || ctx.ulaErr != nil {
		t.Errorf("a command that needs no ULA: %v, %v", err, ctx.ulaErr)
	}
}

// pick --family ipv6 needs the ULA: it fails, saying how to recover.
func TestPickIPv6WithCorruptULA(t *testing.T) {
	stateDir := corruptULA(t)
	code, _, errs := runCLI(t, "pick", "--family", "ipv6", "--hypervisor", "no", "--state-dir", stateDir,
		"--cache-dir", t.TempDir(), "--host-state", "testdata/quiet.json")
	if code != exitError || !strings.Contains(errs, wayOut(stateDir)) {
		t.Errorf("exit %d, stderr %q: want an error saying %q", code, errs, wayOut(stateDir))
	}
	code, out, errs := runCLI(t, "pick", "--family", "ipv4", "--hypervisor", "no", "--state-dir", stateDir,
		"--cache-dir", t.TempDir(), "--host-state", "testdata/quiet.json")
	if code != exitOK || strings.TrimSpace(out) == "" {
		t.Errorf("IPv4 pick: exit %d, %q %q", code, out, errs)
	}
}

//go:build lab

package e2e

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// repoRoot is the repository's top directory.
func repoRoot() string {
	_, self, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(filepath.Dir(self)))
}

// installedFiles lists every file and link under root, relative to it.
func installedFiles(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(root, p)
			out = append(out, "/"+rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// Issue 11 item 1: `make install PREFIX=/usr DESTDIR=...` installs the
// binary, both hook links, both units, the configuration (never
// overwritten), the man pages (one per command), three completions and the notification
// agent's autostart entry and user unit; `make uninstall`
// removes exactly that, keeping a configuration file that holds edits.
func TestPkgMakeInstallUninstall(t *testing.T) {
	dest := t.TempDir()
	bin := filepath.Join(t.TempDir(), "vnetguard")
	make := func(target string) string {
		t.Helper()
		cmd := exec.Command("make", "-C", repoRoot(), target, "PREFIX=/usr", "DESTDIR="+dest, "BIN="+bin)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("make %s: %v\n%s", target, err, out)
		}
		return string(out)
	}
	make("install")
	want := []string{
		"/etc/vnetguard/vnetguard.conf",
		"/etc/xdg/autostart/vnetguard-notify-agent.desktop",
		"/usr/bin/vnetguard",
		"/usr/lib/NetworkManager/dispatcher.d/90-vnetguard",
		"/usr/lib/NetworkManager/dispatcher.d/pre-up.d/90-vnetguard",
		"/usr/lib/systemd/system/vnetguard-firstboot.service",
		"/usr/lib/systemd/system/vnetguard.service",
		"/usr/lib/systemd/user/vnetguard-notify-agent.service",
		"/usr/share/bash-completion/completions/vnetguard",
		"/usr/share/fish/vendor_completions.d/vnetguard.fish",
		"/usr/share/man/man8/vnetguard.8",
		"/usr/share/zsh/vendor-completions/_vnetguard",
	}
	var got, pages []string
	for _, f := range installedFiles(t, dest) {
		if strings.HasPrefix(f, "/usr/share/man/man8/vnetguard-") {
			pages = append(pages, f)
		} else {
			got = append(got, f)
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("installed:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// A man page per command.
	for _, cmd := range []string{"check", "pick", "postinstall", "notify-agent", "watch", "net", "completion"} {
		if !slices.Contains(pages, "/usr/share/man/man8/vnetguard-"+cmd+".8") {
			t.Errorf("no man page for %s: %q", cmd, pages)
		}
	}
	for _, link := range want[3:5] {
		if dst, err := os.Readlink(filepath.Join(dest, link)); err != nil || dst != "/usr/bin/vnetguard" {
			t.Errorf("%s -> %q, %v", link, dst, err)
		}
	}
	comp, _ := os.ReadFile(filepath.Join(dest, "/usr/share/bash-completion/completions/vnetguard"))
	if !strings.Contains(string(comp), "complete -o filenames -F _vnetguard vnetguard") {
		t.Errorf("bash completion is not the generated script:\n%s", comp)
	}

	// An edited configuration survives a re-install (an upgrade) and an uninstall.
	conf := filepath.Join(dest, "/etc/vnetguard/vnetguard.conf")
	const edited = "[main]\ndefault-policy=renumber\n"
	if err := os.WriteFile(conf, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	make("install")
	if b, _ := os.ReadFile(conf); string(b) != edited {
		t.Fatalf("make install overwrote the configuration: %q", b)
	}
	if out := make("uninstall"); !strings.Contains(out, "kept") {
		t.Errorf("uninstall does not say it kept the edited configuration:\n%s", out)
	}
	if got := installedFiles(t, dest); !slices.Equal(got, []string{"/etc/vnetguard/vnetguard.conf"}) {
		t.Fatalf("after uninstall with an edited configuration: %q", got)
	}

	// Unedited, everything goes.
	os.Remove(conf)
	make("install")
	make("uninstall")
	if got := installedFiles(t, dest); len(got) != 0 {
		t.Fatalf("left after uninstall: %q", got)
	}
	if _, err := os.Stat(filepath.Join(dest, "etc/vnetguard")); err == nil {
		t.Errorf("/etc/vnetguard left after uninstall")
	}
}

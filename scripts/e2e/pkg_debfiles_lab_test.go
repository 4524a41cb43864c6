//go:build lab

package e2e

import (
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/vnetguard/vnetguard/scripts/labkit"
)

// Issue 11: the .deb's own files work where they land. The default lab's
// /var/lib/dpkg is read-only, so the package's files are unpacked with
// dpkg-deb -x into the lab's private /usr and /etc; scripts/pkgtest/run
// covers dpkg in a chroot, and a lab started with --dpkg installs the .deb
// with dpkg itself (pkg_installed_lab_test.go; scripts/test-all). The
// packaged pre-up.d hook (a relative link) then moves a clashing network
// before NetworkManager reports the connection up.
func TestPkgDebFilesHookRunsAtPreUp(t *testing.T) {
	labkit.Require(t)
	if st, _ := exec.Command("dpkg-query", "-W", "-f=${db:Status-Abbrev}", "vnetguard").Output(); installedBin || strings.TrimSpace(string(st)) == "ii" {
		t.Skip("vnetguard is installed here (VNETGUARD_BIN, or dpkg): TestPkgInstalled* check the installed package")
	}
	pkgdir := t.TempDir()
	if out, err := exec.Command("make", "-s", "-C", repoRoot(), "packages", "PKGDIR="+pkgdir).CombinedOutput(); err != nil {
		t.Fatalf("make packages: %v\n%s", err, out)
	}
	debs, _ := filepath.Glob(filepath.Join(pkgdir, "*.deb"))
	if len(debs) != 1 {
		t.Fatalf("debs %q", debs)
	}
	list, err := exec.Command("dpkg-deb", "--fsys-tarfile", debs[0]).Output()
	if err != nil {
		t.Fatal(err)
	}
	tarList := exec.Command("tar", "-t")
	tarList.Stdin = strings.NewReader(string(list))
	names, err := tarList.Output()
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, n := range strings.Split(strings.TrimSpace(string(names)), "\n") {
		if n = strings.TrimPrefix(n, "."); n != "" && !strings.HasSuffix(n, "/") {
			if _, err := os.Lstat(n); err == nil {
				t.Fatalf("%s exists already: the lab is not clean", n)
			}
			files = append(files, n)
		}
	}
	sort.Strings(files)
	if out, err := exec.Command("dpkg-deb", "-x", debs[0], "/").CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -x: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		for _, f := range files {
			os.Remove(f)
		}
	})
	const hooks = "/usr/lib/NetworkManager/dispatcher.d"
	for _, link := range []string{hooks + "/90-vnetguard", hooks + "/pre-up.d/90-vnetguard"} {
		if dst, err := filepath.EvalSymlinks(link); err != nil || dst != "/usr/bin/vnetguard" {
			t.Fatalf("%s -> %q, %v; want the packaged binary", link, dst, err)
		}
	}
	if out, err := exec.Command("/usr/bin/vnetguard", "--version").Output(); err != nil || !strings.HasPrefix(string(out), "vnetguard 0.0.0+git") {
		t.Fatalf("packaged binary: %q %v", out, err)
	}

	spec := netSpec{name: "pk", bridge: "vbr-pk", v4: "192.168.189", policy: "renumber"}
	defineNetwork(t, spec)
	old := netip.MustParsePrefix("192.168.189.0/24")
	nmUplink(t, "up-pk", "192.168.189.254/24", "192.168.189.50/24")
	if now := liveV4(t, spec.name); now.Overlaps(old) {
		t.Fatalf("network still on %s when nmcli connection up returned", now)
	}
}

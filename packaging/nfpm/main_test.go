package main

import (
	"os/exec"
	"testing"
	"time"
)

func TestVersionFrom(t *testing.T) {
	at := time.Date(2026, 11, 24, 7, 51, 15, 0, time.UTC)
	for _, c := range []struct{ describe, want string }{
		{"v1.2.3-0-gabc1234", "1.2.3"},
		{"v1.2.3-0-gabc1234-dirty", "1.2.3+dirty"},
		{"v1.2.3-4-gabc1234", "1.2.3+4.gabc1234"},
		{"v1.2.3-4-gabc1234-dirty", "1.2.3+4.gabc1234.dirty"},
		{"ccfc46f", "0.0.0+git20261124075115.gccfc46f"},
		{"ccfc46f-dirty", "0.0.0+git20261124075115.gccfc46f.dirty"},
	} {
		if got := versionFrom(c.describe, at); got != c.want {
			t.Errorf("versionFrom(%q) = %q, want %q", c.describe, got, c.want)
		}
	}
}

// Later commits sort later, for dpkg (upgrades from a previous build).
func TestUntaggedVersionsSortForDpkg(t *testing.T) {
	dpkg, err := exec.LookPath("dpkg")
	if err != nil {
		t.Skip("no dpkg")
	}
	a := versionFrom("aaaaaaa", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	b := versionFrom("0000000", time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC))
	for _, pair := range [][2]string{{a, b}, {"0.0.0~prev", a}, {b, "0.0.1"}} {
		if err := exec.Command(dpkg, "--compare-versions", pair[0], "lt", pair[1]).Run(); err != nil {
			t.Errorf("dpkg: %s is not older than %s", pair[0], pair[1])
		}
	}
}

// Command nfpm builds vnetguard's .deb and .rpm from packaging/nfpm/nfpm.yaml
// with github.com/goreleaser/nfpm/v2 (`make packages` runs it; the
// vnetguard binary does not link nfpm). Run it from the repository's top
// directory after `make install PREFIX=/usr DESTDIR=STAGE`:
//
//	go run ./packaging/nfpm -stage STAGE -out DIR [-version V]
//	go run ./packaging/nfpm -print-version
//
// The version comes from git (`git describe`): a tag vX.Y.Z gives X.Y.Z,
// N commits after it X.Y.Z+N.gHASH; with no tag, 0.0.0+gitTIME.gHASH (the
// commit's time, so later builds sort later); ".dirty" marks uncommitted
// changes.
package main

import (
	"bytes"
	"compress/gzip"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"time"

	"github.com/goreleaser/nfpm/v2"
	_ "github.com/goreleaser/nfpm/v2/deb"
	"github.com/goreleaser/nfpm/v2/files"
	_ "github.com/goreleaser/nfpm/v2/rpm"
)

func main() {
	config := flag.String("config", "packaging/nfpm/nfpm.yaml", "the nfpm description")
	stage := flag.String("stage", "", "where `make install DESTDIR=` put the files")
	out := flag.String("out", "build/packages", "where the packages go")
	version := flag.String("version", "", "the package version (default: from git describe)")
	arch := flag.String("arch", runtime.GOARCH, "the architecture, as GOARCH names it")
	formats := flag.String("formats", "deb,rpm", "the package formats, comma-separated")
	printVersion := flag.Bool("print-version", false, "print the version from git and exit")
	flag.Parse()
	if *version == "" {
		v, err := gitVersion()
		if err != nil {
			fatal(err)
		}
		*version = v
	}
	if *printVersion {
		fmt.Println(*version)
		return
	}
	if *stage == "" {
		fatal(fmt.Errorf("-stage is required"))
	}
	abs, err := filepath.Abs(*stage)
	if err != nil {
		fatal(err)
	}
	if err := prepareStage(abs, *version); err != nil {
		fatal(err)
	}
	env := map[string]string{"VERSION": *version, "STAGE": abs, "ARCH": *arch}
	cfg, err := nfpm.ParseFileWithEnvMapping(*config, func(k string) string { return env[k] })
	if err != nil {
		fatal(err)
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		fatal(err)
	}
	for _, format := range strings.Split(*formats, ",") {
		path, err := build(&cfg, format, *out, abs)
		if err != nil {
			fatal(fmt.Errorf("%s: %w", format, err))
		}
		fmt.Println(path)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "packaging/nfpm:", err)
	os.Exit(1)
}

func build(cfg *nfpm.Config, format, out, stage string) (string, error) {
	info, err := cfg.Get(format)
	if err != nil {
		return "", err
	}
	if format == "rpm" {
		// The .deb carries its own Debian changelog (nfpm's lacks the
		// distribution and urgency lintian wants).
		info.Changelog = filepath.Join(stage, "changelog.yml")
	}
	if info.Contents, err = expandDocGlobs(info.Contents); err != nil {
		return "", err
	}
	info = nfpm.WithDefaults(info)
	if err := nfpm.Validate(info); err != nil {
		return "", err
	}
	pkg, err := nfpm.Get(format)
	if err != nil {
		return "", err
	}
	target := filepath.Join(out, pkg.ConventionalFileName(info))
	f, err := os.Create(target)
	if err != nil {
		return "", err
	}
	info.Target = target
	if err := pkg.Package(info, f); err != nil {
		f.Close()
		os.Remove(target)
		return "", err
	}
	return target, f.Close()
}

// expandDocGlobs expands a glob in an RPM %doc entry's source (nfpm globs
// only plain files): one entry per match, in the destination directory.
func expandDocGlobs(in files.Contents) (files.Contents, error) {
	var out files.Contents
	for _, c := range in {
		if c.Type != files.TypeRPMDoc || !strings.ContainsAny(c.Source, "*?[") {
			out = append(out, c)
			continue
		}
		matches, err := filepath.Glob(c.Source)
		if err != nil || len(matches) == 0 {
			return nil, fmt.Errorf("%s: no match (%v)", c.Source, err)
		}
		for _, m := range matches {
			e := *c
			e.Source = m
			e.Destination = filepath.Join(c.Destination, filepath.Base(m))
			out = append(out, &e)
		}
	}
	return out, nil
}

var described = regexp.MustCompile(`^v?([0-9][0-9A-Za-z.~]*)-([0-9]+)-g([0-9a-f]+)(-dirty)?$`)

// gitVersion stamps the version from git describe (read-only).
func gitVersion() (string, error) {
	git := func(args ...string) (string, error) {
		b, err := exec.Command("git", args...).Output()
		return strings.TrimSpace(string(b)), err
	}
	d, err := git("describe", "--tags", "--long", "--always", "--dirty", "--match", "v[0-9]*")
	if err != nil {
		return "", fmt.Errorf("git describe: %w (give -version)", err)
	}
	ct, err := git("log", "-1", "--format=%ct")
	if err != nil {
		return "", fmt.Errorf("git log: %w", err)
	}
	var secs int64
	fmt.Sscan(ct, &secs)
	return versionFrom(d, time.Unix(secs, 0)), nil
}

// versionFrom turns git describe's output into a package version; commit
// is the commit's time, which orders untagged builds.
func versionFrom(describe string, commit time.Time) string {
	if m := described.FindStringSubmatch(describe); m != nil {
		v := m[1]
		if m[2] != "0" {
			v += "+" + m[2] + ".g" + m[3]
		}
		if m[4] != "" {
			v += map[bool]string{true: "+dirty", false: ".dirty"}[m[2] == "0"]
		}
		return v
	}
	hash, dirty := strings.CutSuffix(describe, "-dirty")
	v := "0.0.0+git" + commit.UTC().Format("20060102150405") + ".g" + hash
	if dirty {
		v += ".dirty"
	}
	return v
}

// prepareStage adds what a package needs beyond `make install`: the man
// pages compressed (reproducibly) and a changelog entry for this build, in
// Debian's format (changelog.Debian.gz) and in nfpm's for the RPM.
func prepareStage(stage, version string) error {
	pages, err := filepath.Glob(filepath.Join(stage, "usr/share/man/man8/*.8"))
	if err != nil {
		return err
	}
	if len(pages) == 0 {
		return fmt.Errorf("no man page in %s", filepath.Join(stage, "usr/share/man/man8"))
	}
	for _, man := range pages {
		b, err := os.ReadFile(man)
		if err != nil {
			return err
		}
		if err := writeGzip(man+".gz", b); err != nil {
			return err
		}
		os.Remove(man)
	}
	date := time.Unix(0, 0).UTC()
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		var secs int64
		fmt.Sscan(s, &secs)
		date = time.Unix(secs, 0).UTC()
	} else if ct, err := exec.Command("git", "log", "-1", "--format=%ct").Output(); err == nil {
		var secs int64
		fmt.Sscan(string(ct), &secs)
		date = time.Unix(secs, 0).UTC()
	}
	const who = "vnetguard maintainers <vnetguard@example.org>"
	rpmlog := fmt.Sprintf(`- semver: %q
  date: %s
  packager: %s
  changes:
    - note: Built from git, version %s.
`, version+"-1", date.Format(time.RFC3339), who, version)
	if err := os.WriteFile(filepath.Join(stage, "changelog.yml"), []byte(rpmlog), 0o644); err != nil {
		return err
	}
	deblog := fmt.Sprintf("vnetguard (%s-1) unstable; urgency=medium\n\n  * Built from git, version %s.\n\n -- %s  %s\n",
		version, version, who, date.Format("Mon, 02 Jan 2006 15:04:05 -0700"))
	return writeGzip(filepath.Join(stage, "changelog.Debian.gz"), []byte(deblog))
}

func writeGzip(path string, data []byte) error {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return err
	}
	zw.Write(data)
	if err := zw.Close(); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

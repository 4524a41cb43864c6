package netdef

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// nested returns a <network> holding depth-1 levels of <open> elements,
// so that the document nests depth elements in all.
func nested(depth int, attrs, open, close string) []byte {
	var b strings.Builder
	b.WriteString("<network" + attrs + "><name>deep</name>")
	b.WriteString(strings.Repeat(open, depth-1))
	b.WriteString(strings.Repeat(close, depth-1))
	b.WriteString("</network>")
	return []byte(b.String())
}

// allocated returns the bytes f allocates (no test here runs in
// parallel, so the global counter is f's alone).
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// As libxml2 counts (and libvirt 9.0 was seen to): 257 levels, root
// included, parse; 258 do not.
func TestParseDepthLimit(t *testing.T) {
	if _, err := Parse(nested(MaxDepth+1, "", "<a>", "</a>")); err != nil {
		t.Fatalf("a document nesting %d elements must parse: %v", MaxDepth+1, err)
	}
	_, err := Parse(nested(MaxDepth+2, "", "<a>", "</a>"))
	if !errors.Is(err, ErrTooDeep) {
		t.Fatalf("a document nesting %d elements: err = %v, want ErrTooDeep", MaxDepth+2, err)
	}
	if !strings.Contains(err.Error(), "256") {
		t.Errorf("the error does not name the limit: %v", err)
	}
}

// 100,000 levels (700 KB) took 6 GB and 16 s before the depth limit and
// the linear scan; now they fail at level 258.
func TestParseHundredThousandLevelsFailsFast(t *testing.T) {
	// Without a depth limit the 100,000 levels below would exhaust memory
	// instead of failing: check the limit cheaply first.
	if _, err := Parse(nested(MaxDepth+2, "", "<a>", "</a>")); !errors.Is(err, ErrTooDeep) {
		t.Fatalf("no depth limit: %v", err)
	}
	raw := nested(100_000, "", "<a>", "</a>")
	var err error
	start := time.Now()
	n := allocated(func() { _, err = Parse(raw) })
	if !errors.Is(err, ErrTooDeep) {
		t.Fatalf("err = %v, want ErrTooDeep", err)
	}
	if n > 4<<20 {
		t.Errorf("refusing a %d-byte document allocated %d bytes, want under 4 MiB", len(raw), n)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("refusing took %v", d)
	}
}

// Memory must grow with the input, not with depth x names: each shape
// below took hundreds of MB when every element recorded its full path.
func TestParseMemoryIsLinear(t *testing.T) {
	longURI := "urn:" + strings.Repeat("x", 20_000)
	longName := strings.Repeat("n", 50_000)
	shapes := []struct {
		name string
		raw  []byte
	}{
		// 200 levels under a 20 KB namespace URI (was 400 MB)
		{"deep long URI", nested(200, ` xmlns:p="`+longURI+`"`, "<p:a>", "</p:a>")},
		// 2,000 siblings under a 100 KB URI, two levels deep (was 200 MB)
		{"wide long URI", []byte(`<network xmlns:p="urn:` + strings.Repeat("y", 100_000) + `"><name>w</name>` +
			strings.Repeat("<p:a/>", 2_000) + `</network>`)},
		// 2,000 children of an element with a 50 KB name (was 100 MB)
		{"long ancestor name", []byte(`<network><name>l</name><` + longName + `>` +
			strings.Repeat("<b/>", 2_000) + `</` + longName + `></network>`)},
		// 255 levels of libvirt's own names, each level with siblings
		{"deep known names", nested(MaxDepth, "", "<ip/><dhcp><range/>", "</dhcp>")},
	}
	for _, s := range shapes {
		t.Run(s.name, func(t *testing.T) {
			var err error
			n := allocated(func() { _, err = Parse(s.raw) })
			if err != nil {
				t.Fatal(err)
			}
			if limit := uint64(64*len(s.raw) + 1<<20); n > limit {
				t.Errorf("parsing %d bytes allocated %d, want under %d", len(s.raw), n, limit)
			}
		})
	}
}

// The validator still finds the lines of the elements it names, and
// elements outside what it can name get none.
func TestParseLinesOfNamedElementsOnly(t *testing.T) {
	d, err := Parse([]byte("<network>\n<name>x</name>\n<ip address='10.0.0.1' prefix='24'>\n<dhcp>\n<range start='10.0.0.2' end='10.0.0.9'>\n<lease expiry='1'/>\n" +
		"<a><b><c/></b></a>\n</range></dhcp></ip>\n<" + strings.Repeat("x", maxLinedName+1) + "><ip/></" + strings.Repeat("x", maxLinedName+1) + ">\n<q:ip xmlns:q='urn:other'/>\n</network>"))
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]int{
		"network/ip[0]/dhcp[0]/range[0]/lease[0]":                6,
		"network/ip[0]/dhcp[0]/range[0]/a[0]":                    7,
		"network/ip[0]/dhcp[0]/range[0]/a[0]/b[0]":               7,
		"network/ip[0]/dhcp[0]/range[0]/a[0]/b[0]/c[0]":          0, // deeper than maxLinedDepth
		"network/" + strings.Repeat("x", maxLinedName+1) + "[0]": 0,
		"network/urn:other ip[0]":                                0,
	} {
		if got := d.Line(path); got != want {
			t.Errorf("line of %s = %d, want %d", path, got, want)
		}
	}
}

func TestParseSizeLimit(t *testing.T) {
	raw := []byte("<network><name>big</name><!--" + strings.Repeat("x", MaxDefinitionSize) + "--></network>")
	if _, err := Parse(raw); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Parse of %d bytes: err = %v, want ErrTooLarge", len(raw), err)
	}
	ok := []byte("<network><name>big</name><!--" + strings.Repeat("x", MaxDefinitionSize-50) + "--></network>")
	if len(ok) > MaxDefinitionSize {
		t.Fatal("test document too big")
	}
	if _, err := Parse(ok); err != nil {
		t.Fatalf("a %d-byte document must parse: %v", len(ok), err)
	}
}

// ParseFile stops reading past the limit: a 256 MiB (sparse) file costs
// no more memory than the limit, and the error names the file and limit.
func TestParseFileReadsAtMostTheLimit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "huge.xml")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("<network><name>huge</name><!--"); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(256 << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	n := allocated(func() { _, err = ParseFile(path) })
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
	if msg := err.Error(); !strings.Contains(msg, path) || !strings.Contains(msg, "4 MiB") {
		t.Errorf("the error should name the file and the limit: %v", msg)
	}
	if n > 3*MaxDefinitionSize {
		t.Errorf("reading allocated %d bytes, want under %d", n, 3*MaxDefinitionSize)
	}
}

func TestParseFileDepthErrorNamesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "deep.xml")
	if err := os.WriteFile(path, nested(MaxDepth+2, "", "<a>", "</a>"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := ParseFile(path)
	if !errors.Is(err, ErrTooDeep) || !strings.HasPrefix(err.Error(), path+": line 1: ") {
		t.Fatalf("err = %v, want %s: line 1: ... ErrTooDeep", err, path)
	}
}

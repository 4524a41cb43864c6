// Command benchtable passes `go test -bench` output through unchanged and,
// at the end, prints every figure the benchmarks reported as one table:
// benchmark, figure, value, unit. The figures are the benchmarks' own
// (ns/op, B/op and each b.ReportMetric, the references measured in the same
// run and their ratios among them), in the order they came. It exits 1 when
// the output shows a failure (a FAIL line), so `make bench-lab` fails with
// the benchmarks.
//
//	go test -run '^$' -bench . ./conflict/ | go run ./scripts/benchtable
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// figure is one value a benchmark reported.
type figure struct {
	bench, unit string
	value       string
}

// parse reads a benchmark result line: "BenchmarkName-2  1  123 ns/op  4.5 ms-hook ...".
// ok is false for any other line.
func parse(line string) ([]figure, bool) {
	f := strings.Fields(line)
	if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
		return nil, false
	}
	name := f[0]
	if i := strings.LastIndexByte(name, '-'); i > 0 {
		name = name[:i] // the GOMAXPROCS suffix
	}
	var out []figure
	// f[1] is the iteration count; then value unit pairs.
	for i := 2; i+1 < len(f); i += 2 {
		out = append(out, figure{bench: strings.TrimPrefix(name, "Benchmark"), value: f[i], unit: f[i+1]})
	}
	return out, len(out) > 0
}

// table renders the figures as a markdown table. A benchmark X whose
// reference XNaive (same sub-benchmark) ran too gets a row with the ratio
// of their ns/op.
func table(figs []figure) string {
	var b strings.Builder
	b.WriteString("| benchmark | figure | value |\n|---|---|---|\n")
	nsop := map[string]float64{}
	for _, f := range figs {
		fmt.Fprintf(&b, "| %s | %s | %s |\n", f.bench, f.unit, f.value)
		if v, err := strconv.ParseFloat(f.value, 64); err == nil && f.unit == "ns/op" {
			nsop[f.bench] = v
		}
	}
	for _, f := range figs {
		top, sub, _ := strings.Cut(f.bench, "/")
		ref, ok := nsop[top+"Naive/"+sub]
		if f.unit != "ns/op" || !ok || nsop[f.bench] == 0 || strings.HasSuffix(top, "Naive") {
			continue
		}
		fmt.Fprintf(&b, "| %s | %sNaive/%s ÷ %s (ns/op) | %.0f× |\n", f.bench, top, sub, top, ref/nsop[f.bench])
	}
	return b.String()
}

func run(in io.Reader, out io.Writer) (failed bool, err error) {
	var figs []figure
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		fmt.Fprintln(out, line)
		if fs, ok := parse(line); ok {
			figs = append(figs, fs...)
		}
		if strings.HasPrefix(line, "FAIL") || strings.HasPrefix(line, "--- FAIL") {
			failed = true
		}
	}
	if err := sc.Err(); err != nil {
		return failed, err
	}
	if len(figs) > 0 {
		fmt.Fprintf(out, "\n%s", table(figs))
	}
	return failed, nil
}

func main() {
	failed, err := run(os.Stdin, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		os.Exit(2)
	}
	if failed {
		os.Exit(1)
	}
}

package main

import (
	"strings"
	"testing"
)

func TestRunTabulatesEveryFigure(t *testing.T) {
	in := `goos: linux
BenchmarkHookCostScale-2   	       1	27653585807 ns/op	         2.824 ms-hook-5	       473.9 ms-hook-clash-500	        37.27 ms-python-5
--- BENCH: BenchmarkHookCostScale-2
    bench_daemon_lab_test.go:148: 5 networks: vnetguard hook 2.82ms
BenchmarkStorm-2 	1	100 ns/op	3.5 %core-quiet-storm
PASS
ok  	github.com/vnetguard/vnetguard/scripts/e2e	161.518s
`
	var out strings.Builder
	failed, err := run(strings.NewReader(in), &out)
	if err != nil || failed {
		t.Fatalf("failed %v, err %v", failed, err)
	}
	got := out.String()
	if !strings.HasPrefix(got, in) {
		t.Fatalf("the input was not passed through:\n%s", got)
	}
	want := `| benchmark | figure | value |
|---|---|---|
| HookCostScale | ns/op | 27653585807 |
| HookCostScale | ms-hook-5 | 2.824 |
| HookCostScale | ms-hook-clash-500 | 473.9 |
| HookCostScale | ms-python-5 | 37.27 |
| Storm | ns/op | 100 |
| Storm | %core-quiet-storm | 3.5 |
`
	if !strings.HasSuffix(got, want) {
		t.Fatalf("table:\n%s\nwant\n%s", got[len(in):], want)
	}
}

func TestRunSeesFailures(t *testing.T) {
	var out strings.Builder
	failed, _ := run(strings.NewReader("--- FAIL: BenchmarkX\nFAIL\n"), &out)
	if !failed {
		t.Fatal("a FAIL line was not seen")
	}
	if strings.Contains(out.String(), "| benchmark |") {
		t.Fatal("a table with no figures")
	}
}

func TestTableRatioToNaive(t *testing.T) {
	got := table([]figure{{"CheckAll/routes=1000", "ns/op", "200"}, {"CheckAllNaive/routes=1000", "ns/op", "30000"}})
	if !strings.Contains(got, "| CheckAll/routes=1000 | CheckAllNaive/routes=1000 ÷ CheckAll (ns/op) | 150× |") {
		t.Fatalf("no ratio row:\n%s", got)
	}
}

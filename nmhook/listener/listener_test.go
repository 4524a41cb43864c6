package listener

import (
	"context"
	"sync"
	"testing"
	"time"
)

type passes struct {
	mu  sync.Mutex
	log []string
}

func (p *passes) add(r string) { p.mu.Lock(); p.log = append(p.log, r); p.mu.Unlock() }
func (p *passes) n() int       { p.mu.Lock(); defer p.mu.Unlock(); return len(p.log) }

func TestBurstMakesOnePass(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := make(chan string, 64)
	var p passes
	// A debounce far above the gaps, so a loaded machine cannot split the
	// burst.
	go Run(ctx, Config{Debounce: 300 * time.Millisecond, MaxDelay: 10 * time.Second}, events, nil, func(_ context.Context, r string) time.Duration {
		p.add(r)
		return 0
	})
	for i := 0; i < 20; i++ {
		events <- "address"
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(800 * time.Millisecond)
	if p.n() != 1 {
		t.Fatalf("a burst of 20 events made %d passes, want 1", p.n())
	}
}

func TestEndlessEventsStillPassWithinMaxDelay(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := make(chan string, 64)
	var p passes
	go Run(ctx, Config{Debounce: 50 * time.Millisecond, MaxDelay: 150 * time.Millisecond}, events, nil, func(_ context.Context, r string) time.Duration {
		p.add(r)
		return 0
	})
	deadline := time.Now().Add(500 * time.Millisecond)
	for time.Now().Before(deadline) {
		events <- "flap"
		time.Sleep(10 * time.Millisecond)
	}
	if n := p.n(); n < 2 || n > 5 {
		t.Fatalf("events every 10ms for 500ms with a 150ms cap made %d passes, want 2-5", n)
	}
}

func TestPassAskingAgainIsRerun(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := make(chan string, 1)
	var p passes
	go Run(ctx, Config{Debounce: 10 * time.Millisecond}, events, nil, func(_ context.Context, r string) time.Duration {
		p.add(r)
		if p.n() == 1 {
			return 50 * time.Millisecond // held back by damping
		}
		return 0
	})
	events <- "address"
	time.Sleep(300 * time.Millisecond)
	if p.n() != 2 || p.log[1] != "damping window ended" {
		t.Fatalf("passes %v", p.log)
	}
}

func TestUrgentRunsAtOnceAndAStormAtMostOncePerDebounce(t *testing.T) {
	events, urgent := make(chan string, 1), make(chan string, 1)
	var p passes
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ran := make(chan time.Time, 100)
	go Run(ctx, Config{Debounce: 200 * time.Millisecond}, events, urgent, func(_ context.Context, r string) time.Duration {
		p.add(r)
		ran <- time.Now()
		return 0
	})
	start := time.Now()
	urgent <- "address 192.168.122.5/24 on wlan0"
	first := <-ran
	if d := first.Sub(start); d > 150*time.Millisecond {
		t.Fatalf("urgent pass after %v, want at once", d)
	}
	// A storm: urgent and plain events for 500 ms; passes at most one per
	// debounce, and plain events never postpone a due urgent pass.
	stop := time.Now().Add(500 * time.Millisecond)
	for time.Now().Before(stop) {
		select {
		case urgent <- "u":
		default:
		}
		select {
		case events <- "e":
		default:
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(450 * time.Millisecond)
	if n := p.n(); n > 6 || n < 2 {
		t.Fatalf("%d passes in ~1 s of storm with a 200 ms debounce, want 2..6", n)
	}
}

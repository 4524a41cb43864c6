# vnetguard — build, test and benchmark targets. The README's two commands
# (scripts/demo and scripts/test-all) do all set-up themselves; these targets
# are the developer's shortcuts.

GO      ?= go
PREFIX  ?= /usr
DESTDIR ?=
BIN     := bin/vnetguard
FUZZTIME ?= 10s
BENCHTIME ?= 20x

.PHONY: build test test-unit test-lab test-faults bench bench-lab fuzz vet install clean

build:
	$(GO) build -o $(BIN) ./cmd/vnetguard

# Everything: unit tests, vet, short fuzzing, and the lab tests.
test:
	scripts/test-all

test-unit:
	$(GO) test -count=1 ./...

test-lab: build
	scripts/lab run -- $(GO) test -tags lab -count=1 -p 1 ./...

# The fault tests alone, with 100 kill -9 runs (CI runs 30).
test-faults: build
	VNETGUARD_KILL_RUNS=100 scripts/lab run -- $(GO) test -tags lab -count=1 -v -run 'KillNine|LibvirtdKilled|HookHandsOver|FailedCreate' -timeout 60m ./scripts/e2e/

vet:
	$(GO) vet ./...
	$(GO) vet -tags lab ./...

# Benchmarks print figures: the indexed engine at 1k/10k/100k routes x 1,000
# networks, then the linear-scan reference on the same data (once: it takes
# seconds), so the ratio can be read off one run.
bench:
	$(GO) test -run='^$$' -bench='^Benchmark(NewIndex|CheckAll|Allocate)$$' -benchmem -benchtime=$(BENCHTIME) ./conflict/
	$(GO) test -run='^$$' -bench='^BenchmarkCheckAllNaive$$' -benchtime=1x ./conflict/

# Lab benchmarks (minutes): conflict-to-lease over 10 runs, a real VM's
# re-lease after a renumber against a plain link bounce, hook cost with
# 50 networks, daemon latency over 30 runs.
bench-lab:
	scripts/lab run -- $(GO) test -tags lab -run='^$$' -bench='ConflictToLease|HookCost|DaemonLatency|VMReLease' -benchtime=1x -timeout 30m ./scripts/e2e/

# Each fuzz target for FUZZTIME (short by default).
fuzz:
	scripts/fuzz $(FUZZTIME)

# The dispatcher hook is a link to the binary: NetworkManager runs it as
# 90-vnetguard, and vnetguard knows itself by that name. NetworkManager
# wants hooks owned by root and not writable by group or others. The link
# in pre-up.d runs before a connection is reported up (NetworkManager waits
# for it), so a clashing network moves out of the way first.
install: build
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/vnetguard
	install -d -m 0755 $(DESTDIR)/usr/lib/NetworkManager/dispatcher.d/pre-up.d
	ln -sf $(PREFIX)/bin/vnetguard $(DESTDIR)/usr/lib/NetworkManager/dispatcher.d/90-vnetguard
	ln -sf $(PREFIX)/bin/vnetguard $(DESTDIR)/usr/lib/NetworkManager/dispatcher.d/pre-up.d/90-vnetguard
	install -D -m 0644 packaging/systemd/vnetguard.service $(DESTDIR)/usr/lib/systemd/system/vnetguard.service
	install -D -m 0644 packaging/config/vnetguard.conf $(DESTDIR)/etc/vnetguard/vnetguard.conf
	install -D -m 0644 packaging/man/vnetguard.8 $(DESTDIR)$(PREFIX)/share/man/man8/vnetguard.8

# What install put there, except the configuration file (it may hold edits).
.PHONY: uninstall
uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/vnetguard \
		$(DESTDIR)/usr/lib/NetworkManager/dispatcher.d/90-vnetguard \
		$(DESTDIR)/usr/lib/NetworkManager/dispatcher.d/pre-up.d/90-vnetguard \
		$(DESTDIR)/usr/lib/systemd/system/vnetguard.service \
		$(DESTDIR)$(PREFIX)/share/man/man8/vnetguard.8

clean:
	rm -rf bin

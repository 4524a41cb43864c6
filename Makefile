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
	{ $(GO) test -run='^$$' -bench='^Benchmark(NewIndex|CheckAll|Allocate)$$' -benchmem -benchtime=$(BENCHTIME) ./conflict/ && \
	  $(GO) test -run='^$$' -bench='^BenchmarkCheckAllNaive$$' -benchtime=1x ./conflict/; } 2>&1 | $(GO) run ./scripts/benchtable

# Lab benchmarks (about 20 minutes), each next to its reference measured in
# the same run: conflict-to-lease over 10 runs; a real VM's re-lease after a
# renumber against a plain link bounce; hook cost at 5, 50 and 500 networks
# against a Python reference and a do-nothing binary; daemon latency over
# 30 runs; memory and pass time with 100k routes; an address storm. Both
# end with one table of every figure (scripts/benchtable).
bench-lab:
	scripts/lab run -- $(GO) test -tags lab -run='^$$' -bench='ConflictToLease|HookCost|DaemonLatency|Scale100k|Storm|VMReLease' -benchtime=1x -timeout 60m ./scripts/e2e/ 2>&1 | \
	  $(GO) run ./scripts/benchtable

# Each fuzz target for FUZZTIME (short by default).
fuzz:
	scripts/fuzz $(FUZZTIME)

# The dispatcher hook is a link to the binary: NetworkManager runs it as
# 90-vnetguard, and vnetguard knows itself by that name. NetworkManager
# wants hooks owned by root and not writable by group or others. The link
# in pre-up.d runs before a connection is reported up (NetworkManager waits
# for it), so a clashing network moves out of the way first.
# The configuration file is installed only when there is none: an upgrade
# never overwrites an administrator's edits (the packages mark it a conffile).
# Completion scripts and a man page per command (vnetguard-COMMAND.8, from
# its --help) are generated from the binary's command table.
HOOKDIR   := /usr/lib/NetworkManager/dispatcher.d
UNITDIR   := /usr/lib/systemd/system
CONFFILE  := /etc/vnetguard/vnetguard.conf
BASHCOMP  := $(PREFIX)/share/bash-completion/completions/vnetguard
ZSHCOMP   := $(PREFIX)/share/zsh/vendor-completions/_vnetguard
FISHCOMP  := $(PREFIX)/share/fish/vendor_completions.d/vnetguard.fish
MAN8      := $(PREFIX)/share/man/man8
COMPGEN   := $(dir $(BIN))completions
AUTOSTART := /etc/xdg/autostart/vnetguard-notify-agent.desktop
USERUNIT  := /usr/lib/systemd/user/vnetguard-notify-agent.service

install: build
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/vnetguard
	install -d -m 0755 $(DESTDIR)$(HOOKDIR)/pre-up.d
	ln -sf $(PREFIX)/bin/vnetguard $(DESTDIR)$(HOOKDIR)/90-vnetguard
	ln -sf $(PREFIX)/bin/vnetguard $(DESTDIR)$(HOOKDIR)/pre-up.d/90-vnetguard
	install -D -m 0644 packaging/systemd/vnetguard.service $(DESTDIR)$(UNITDIR)/vnetguard.service
	install -D -m 0644 packaging/systemd/vnetguard-firstboot.service $(DESTDIR)$(UNITDIR)/vnetguard-firstboot.service
	[ -e $(DESTDIR)$(CONFFILE) ] || install -D -m 0644 packaging/config/vnetguard.conf $(DESTDIR)$(CONFFILE)
	install -D -m 0644 packaging/man/vnetguard.8 $(DESTDIR)$(MAN8)/vnetguard.8
	rm -rf $(COMPGEN)
	$(BIN) completion man $(COMPGEN)/man
	install -m 0644 $(COMPGEN)/man/vnetguard-*.8 $(DESTDIR)$(MAN8)/
	$(BIN) completion bash >$(COMPGEN)/vnetguard.bash
	$(BIN) completion zsh >$(COMPGEN)/_vnetguard
	$(BIN) completion fish >$(COMPGEN)/vnetguard.fish
	install -D -m 0644 $(COMPGEN)/vnetguard.bash $(DESTDIR)$(BASHCOMP)
	install -D -m 0644 $(COMPGEN)/_vnetguard $(DESTDIR)$(ZSHCOMP)
	install -D -m 0644 $(COMPGEN)/vnetguard.fish $(DESTDIR)$(FISHCOMP)
	install -D -m 0644 packaging/xdg/vnetguard-notify-agent.desktop $(DESTDIR)$(AUTOSTART)
	install -D -m 0644 packaging/systemd/user/vnetguard-notify-agent.service $(DESTDIR)$(USERUNIT)

# What install put there. The configuration file goes only when it is
# still the shipped one (otherwise it holds edits, and is kept).
.PHONY: uninstall
uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/vnetguard \
		$(DESTDIR)$(HOOKDIR)/90-vnetguard \
		$(DESTDIR)$(HOOKDIR)/pre-up.d/90-vnetguard \
		$(DESTDIR)$(UNITDIR)/vnetguard.service \
		$(DESTDIR)$(UNITDIR)/vnetguard-firstboot.service \
		$(DESTDIR)$(MAN8)/vnetguard.8 $(DESTDIR)$(MAN8)/vnetguard-*.8 \
		$(DESTDIR)$(BASHCOMP) $(DESTDIR)$(ZSHCOMP) $(DESTDIR)$(FISHCOMP) \
		$(DESTDIR)$(AUTOSTART) $(DESTDIR)$(USERUNIT)
	if cmp -s packaging/config/vnetguard.conf $(DESTDIR)$(CONFFILE); then \
		rm -f $(DESTDIR)$(CONFFILE); rmdir $(DESTDIR)/etc/vnetguard 2>/dev/null || true; \
	elif [ -e $(DESTDIR)$(CONFFILE) ]; then \
		echo "kept $(DESTDIR)$(CONFFILE): it was edited"; \
	fi

# .deb and .rpm from one description (packaging/nfpm/nfpm.yaml), holding
# what `make install PREFIX=/usr` installs, the version stamped from git
# into the packages and the binary. Override VERSION=... to build another.
PKGDIR  ?= build/packages
VERSION ?= $(shell $(GO) run ./packaging/nfpm -print-version)

# The version is read from git once, then handed down.
.PHONY: packages packages-at-version
packages:
	$(MAKE) packages-at-version VERSION="$(VERSION)"

packages-at-version:
	rm -rf $(PKGDIR)/stage $(PKGDIR)/*.deb $(PKGDIR)/*.rpm
	mkdir -p $(PKGDIR)
	GOFLAGS="$(GOFLAGS) -trimpath -buildmode=pie '-ldflags=-s -w -X=main.version=$(VERSION)'" $(MAKE) install PREFIX=/usr \
		DESTDIR=$(abspath $(PKGDIR))/stage BIN=$(abspath $(PKGDIR))/bin/vnetguard
	$(GO) run ./packaging/nfpm -stage $(PKGDIR)/stage -out $(PKGDIR) -version "$(VERSION)"

# lintian and rpmlint over the packages (errors fail), then the .deb
# installed, upgraded, removed and purged in a throwaway Debian root.
.PHONY: test-packages
test-packages:
	scripts/pkgtest/run

clean:
	rm -rf bin

// Package logging gives vnetguard's processes a slog logger that writes
// to the systemd journal with structured fields (NETWORK, OLD_SUBNET,
// NEW_SUBNET, CAUSE, ...) when started by systemd, and plain text lines on
// stderr otherwise (a terminal, or NetworkManager's dispatcher, whose
// stderr already goes to the journal).
package logging

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/coreos/go-systemd/v22/journal"
)

// New returns the logger for this process.
func New(stderr io.Writer) *slog.Logger {
	// systemd sets JOURNAL_STREAM when stderr is connected to the journal.
	if os.Getenv("JOURNAL_STREAM") != "" && journal.Enabled() {
		return slog.New(&journalHandler{level: slog.LevelInfo})
	}
	return slog.New(slog.NewTextHandler(stderr, nil))
}

type journalHandler struct {
	level slog.Level
	attrs []slog.Attr
	group string
}

func (h *journalHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }

func (h *journalHandler) Handle(_ context.Context, r slog.Record) error {
	vars := map[string]string{"SYSLOG_IDENTIFIER": "vnetguard"}
	add := func(a slog.Attr) { vars[FieldName(h.group+a.Key)] = a.Value.String() }
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(func(a slog.Attr) bool { add(a); return true })
	return journal.Send(r.Message, priority(r.Level), vars)
}

func (h *journalHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr{}, h.attrs...), attrs...)
	return &c
}

func (h *journalHandler) WithGroup(name string) slog.Handler {
	c := *h
	c.group = h.group + name + "_"
	return &c
}

func priority(l slog.Level) journal.Priority {
	switch {
	case l >= slog.LevelError:
		return journal.PriErr
	case l >= slog.LevelWarn:
		return journal.PriWarning
	case l >= slog.LevelInfo:
		return journal.PriInfo
	}
	return journal.PriDebug
}

// FieldName turns a slog key into a journal field name: upper case
// letters, digits and underscores, not starting with an underscore.
func FieldName(key string) string {
	var b strings.Builder
	for _, c := range strings.ToUpper(key) {
		if c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			b.WriteRune(c)
		} else {
			b.WriteByte('_')
		}
	}
	s := strings.TrimLeft(b.String(), "_")
	if s == "" || (s[0] >= '0' && s[0] <= '9') {
		s = fmt.Sprintf("F_%s", s)
	}
	return s
}

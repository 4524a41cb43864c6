package state

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Intents are records of multi-step effects in progress (a renumber:
// destroy, create, reclaim ports, ...). A backend writes one, synced and
// atomic, before its first destructive step and deletes it when the last
// step is done; any run that finds one left over completes or undoes it
// before doing anything else. They live under /run: like libvirt's live
// networks, they mean nothing after a reboot.
type Intents struct {
	Dir string
}

const intentSuffix = ".intent.json"

func (s Intents) path(key string) string {
	// PathEscape keeps the key one path element ('/' is escaped); a
	// leading '.' is escaped too, since Keys skips dot files (temporary
	// files of WriteFileAtomic).
	name := url.PathEscape(key)
	if strings.HasPrefix(name, ".") {
		name = "%2E" + name[1:]
	}
	return filepath.Join(s.Dir, name+intentSuffix)
}

// Put writes (or replaces) the intent stored under key.
func (s Intents) Put(key string, v any) error {
	if err := EnsurePrivateDir(s.Dir); err != nil {
		return err
	}
	b, err := encodeJSON(v)
	if err != nil {
		return fmt.Errorf("encode intent %s: %w", key, err)
	}
	if err := WriteFileAtomic(s.path(key), b, FileMode); err != nil {
		return fmt.Errorf("write intent %s: %w", key, err)
	}
	return nil
}

// Get reads the intent under key into v; false when there is none. A
// record that cannot be decoded is an error, never silently dropped.
func (s Intents) Get(key string, v any) (bool, error) {
	b, err := os.ReadFile(s.path(key))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := decodeObject(b, v); err != nil {
		return false, fmt.Errorf("intent %s (%s) is unreadable: %w", key, s.path(key), err)
	}
	return true, nil
}

// Delete removes the intent under key; a missing one is fine.
func (s Intents) Delete(key string) error {
	err := os.Remove(s.path(key))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// Keys lists the keys with an intent, sorted, those starting with prefix.
func (s Intents) Keys(prefix string) ([]string, error) {
	entries, err := os.ReadDir(s.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var keys []string
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), intentSuffix)
		if !ok || strings.HasPrefix(name, ".") {
			continue
		}
		key, err := url.PathUnescape(name)
		if err != nil || !strings.HasPrefix(key, prefix) {
			continue
		}
		keys = append(keys, key)
	}
	sort.Strings(keys)
	return keys, nil
}

// Pending lists the networks of one backend with an intent, stored under
// keys "BACKEND:NETWORK".
func (s Intents) Pending(backend string) ([]string, error) {
	keys, err := s.Keys(backend + ":")
	if err != nil {
		return nil, err
	}
	names := make([]string, len(keys))
	for i, k := range keys {
		names[i] = strings.TrimPrefix(k, backend+":")
	}
	return names, nil
}

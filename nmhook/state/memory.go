package state

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"path/filepath"
	"slices"
	"time"
)

// MemoryFile is the file, in the cache directory, of remembered choices.
const MemoryFile = "memory.json"

// rememberDepth bounds how many past choices are kept per subnet.
const rememberDepth = 4

// maxMemorySize bounds what LoadMemory reads: a few KB per network.
const maxMemorySize = 16 << 20

// Memory is what vnetguard remembers about each network.
type Memory struct {
	Networks map[string]*NetworkMemory `json:"networks"`
}

// NetworkMemory: for each subnet as defined, the subnets it was moved to,
// most recent first; and the last action taken.
type NetworkMemory struct {
	Moves      map[netip.Prefix][]netip.Prefix `json:"moves,omitempty"`
	LastAction *Action                         `json:"last_action,omitempty"`
}

// Action records one thing vnetguard did to a network, for status.
type Action struct {
	Time   time.Time      `json:"time"`
	Action string         `json:"action"` // renumber, destroy, warn
	Cause  string         `json:"cause"`
	Moves  []string       `json:"moves,omitempty"` // "old -> new"
	Left   []netip.Prefix `json:"left,omitempty"`  // the subnets a renumber moved away from
}

// LoadMemory reads dir/memory.json; a missing file is an empty memory.
// A corrupt file is reported, not silently dropped: the caller decides
// (the memory returned with the error is empty, never nil).
func LoadMemory(dir string) (*Memory, error) {
	path := filepath.Join(dir, MemoryFile)
	m := &Memory{Networks: map[string]*NetworkMemory{}}
	b, err := readBounded(path, maxMemorySize)
	if errors.Is(err, fs.ErrNotExist) {
		return m, nil
	}
	if err != nil {
		return m, err
	}
	m, err = parseMemory(b)
	if err != nil {
		return m, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// parseMemory decodes memory.json's content; on error the memory is empty.
func parseMemory(b []byte) (*Memory, error) {
	m := &Memory{}
	if err := decodeObject(b, m); err != nil {
		return &Memory{Networks: map[string]*NetworkMemory{}}, err
	}
	if m.Networks == nil {
		m.Networks = map[string]*NetworkMemory{}
	}
	return m, nil
}

// Save writes the memory atomically.
func (m *Memory) Save(dir string) error {
	return writeJSON(filepath.Join(dir, MemoryFile), m)
}

// encode is what Save writes.
func (m *Memory) encode() ([]byte, error) { return encodeJSON(m) }

// Remembered returns the subnets defined moved to before, newest first.
// A nil memory remembers nothing.
func (m *Memory) Remembered(network string, defined netip.Prefix) []netip.Prefix {
	if m == nil {
		return nil
	}
	nm := m.Networks[network]
	if nm == nil {
		return nil
	}
	return slices.Clone(nm.Moves[defined])
}

// Remember records that network's defined subnet now lives at chosen.
func (m *Memory) Remember(network string, defined, chosen netip.Prefix) {
	nm := m.network(network)
	if nm.Moves == nil {
		nm.Moves = map[netip.Prefix][]netip.Prefix{}
	}
	list := slices.DeleteFunc(slices.Clone(nm.Moves[defined]), func(p netip.Prefix) bool { return p == chosen })
	list = append([]netip.Prefix{chosen}, list...)
	if len(list) > rememberDepth {
		list = list[:rememberDepth]
	}
	nm.Moves[defined] = list
}

// Record stores the last action taken on network.
func (m *Memory) Record(network string, a Action) {
	m.network(network).LastAction = &a
}

func (m *Memory) network(name string) *NetworkMemory {
	if m.Networks == nil {
		m.Networks = map[string]*NetworkMemory{}
	}
	nm := m.Networks[name]
	if nm == nil {
		nm = &NetworkMemory{}
		m.Networks[name] = nm
	}
	return nm
}

// UpdateMemory reads dir/memory.json, lets change modify it and writes it
// back, all under one lock shared by every vnetguard process, so that
// updates for different networks never overwrite each other. A corrupt
// file is reported and replaced by change's result on an empty memory.
func UpdateMemory(ctx context.Context, dir string, change func(*Memory)) error {
	unlock, err := Lock(ctx, dir, MemoryFile)
	if err != nil {
		return err
	}
	defer unlock()
	m, loadErr := LoadMemory(dir)
	change(m)
	if err := m.Save(dir); err != nil {
		return err
	}
	if loadErr != nil {
		return fmt.Errorf("remembered state was unreadable and has been started afresh: %w", loadErr)
	}
	return nil
}

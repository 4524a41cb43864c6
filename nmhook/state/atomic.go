// Package state keeps vnetguard's small persistent state: the host's IPv6
// ULA global ID and the subnets chosen for each network (so a network moves
// back to the same place next time). Every write is atomic: a crash leaves
// the old file or the new one, never a torn one.
package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// DirMode and FileMode are the modes of vnetguard's state: root's alone
// (the intents hold libvirt XML, which may carry secrets of a network).
const (
	DirMode  os.FileMode = 0o700
	FileMode os.FileMode = 0o600
)

// WriteFileAtomic writes data to a temporary file beside path, syncs it and
// renames it over path, then syncs the directory so the rename survives a
// power cut. The directory must be private (see EnsurePrivateDir).
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	if err := EnsurePrivateDir(dir); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op once renamed
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func writeJSON(path string, v any) error {
	b, err := encodeJSON(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	return WriteFileAtomic(path, b, FileMode)
}

// encodeJSON is the form of every JSON state file: indented, one final
// newline.
func encodeJSON(v any) ([]byte, error) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// errTooLarge: a state file is small; a huge one (or a link to /dev/zero)
// is broken, and reading it all would only cost memory.
var errTooLarge = errors.New("file too large")

// readBounded reads at most max bytes of path; a longer file is an error
// wrapping errTooLarge.
func readBounded(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s: %w (the limit is %d bytes)", path, errTooLarge, max)
	}
	return b, nil
}

// errNotObject: a state file's JSON must be an object. A bare null would
// decode into nothing, with no error: a silently empty state.
var errNotObject = errors.New("not a JSON object")

// decodeObject decodes a JSON object into v; anything else is an error.
func decodeObject(b []byte, v any) error {
	if t := bytes.TrimLeft(b, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return errNotObject
	}
	return json.Unmarshal(b, v)
}

package state

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"path/filepath"
	"strings"

	"github.com/vnetguard/vnetguard/conflict"
)

// ULAFile holds the host's RFC 4193 global ID, as the /48 it names.
const ULAFile = "ula-prefix"

// maxULASize bounds what is read of ULAFile: its line is 22 bytes.
const maxULASize = 4 << 10

// BadULAError: the ULA file holds no ULA /48. It is never overwritten
// (the user may have written it), so the error says how to recover.
type BadULAError struct {
	Path string
	Err  error // what is wrong with the content
}

func (e *BadULAError) Error() string {
	return fmt.Sprintf("%s: %v (remove %s to make a new one, or write a valid fdXX:XXXX:XXXX::/48 in it)", e.Path, e.Err, e.Path)
}

func (e *BadULAError) Unwrap() error { return e.Err }

// LoadOrCreateULA returns the host's 40-bit ULA global ID from dir, making
// and remembering a random one on first use (RFC 4193 section 3.2: random,
// generated once per site).
func LoadOrCreateULA(dir string) (conflict.ULAGlobalID, error) {
	path := filepath.Join(dir, ULAFile)
	b, err := readBounded(path, maxULASize)
	if err == nil {
		id, perr := ParseULA(strings.TrimSpace(string(b)))
		if perr != nil {
			return id, &BadULAError{Path: path, Err: perr}
		}
		return id, nil
	}
	if errors.Is(err, errTooLarge) {
		return conflict.ULAGlobalID{}, &BadULAError{Path: path, Err: errTooLarge}
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return conflict.ULAGlobalID{}, err
	}
	var id conflict.ULAGlobalID
	if _, err := rand.Read(id[:]); err != nil {
		return id, err
	}
	if err := WriteFileAtomic(path, []byte(id.Prefix48().String()+"\n"), FileMode); err != nil {
		return id, fmt.Errorf("remember ULA prefix: %w", err)
	}
	return id, nil
}

// ParseULA reads a global ID written as its /48 (fdXX:XXXX:XXXX::/48) or as
// ten hex digits.
func ParseULA(s string) (conflict.ULAGlobalID, error) {
	var id conflict.ULAGlobalID
	if len(s) == 10 {
		if _, err := hex.Decode(id[:], []byte(s)); err == nil {
			return id, nil
		}
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return id, fmt.Errorf("ULA prefix %q: want fdXX:XXXX:XXXX::/48 or 10 hex digits", s)
	}
	a := p.Addr().As16()
	if p.Bits() != 48 || a[0] != 0xfd {
		return id, fmt.Errorf("ULA prefix %q: want an fd00::/8 /48", s)
	}
	copy(id[:], a[1:6])
	return id, nil
}

package state

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/vnetguard/vnetguard/conflict"
)

// ULAFile holds the host's RFC 4193 global ID, as the /48 it names.
const ULAFile = "ula-prefix"

// LoadOrCreateULA returns the host's 40-bit ULA global ID from dir, making
// and remembering a random one on first use (RFC 4193 section 3.2: random,
// generated once per site).
func LoadOrCreateULA(dir string) (conflict.ULAGlobalID, error) {
	path := filepath.Join(dir, ULAFile)
	b, err := os.ReadFile(path)
	if err == nil {
		id, perr := ParseULA(strings.TrimSpace(string(b)))
		if perr != nil {
			// Never overwrite what is there: the user may have set it.
			return id, fmt.Errorf("%s: %w", path, perr)
		}
		return id, nil
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

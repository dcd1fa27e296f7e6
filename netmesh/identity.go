package netmesh

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/libp2p/go-libp2p/core/crypto"
)

// IdentityFile is the name of the node's private key inside the data dir.
const IdentityFile = "p2p_identity.key"

// LoadIdentity returns the libp2p private key kept in dir, creating it (mode
// 0600) on first use so a restarted node keeps its peer ID. With an empty dir
// the key is ephemeral.
func LoadIdentity(dir string) (crypto.PrivKey, error) {
	if dir == "" {
		k, _, err := crypto.GenerateEd25519Key(nil) // nil reader: crypto/rand
		return k, err
	}
	path := filepath.Join(dir, IdentityFile)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		k, err := crypto.UnmarshalPrivateKey(b)
		if err != nil {
			return nil, fmt.Errorf("identity %s is corrupt (%v): move it away to create a new one", path, err)
		}
		if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
			if err := os.Chmod(path, 0o600); err != nil {
				return nil, fmt.Errorf("restrict permissions of %s: %w", path, err)
			}
		}
		return k, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("read identity: %w", err)
	}

	k, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		return nil, fmt.Errorf("generate identity: %w", err)
	}
	b, err = crypto.MarshalPrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("encode identity: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	tmp, err := os.CreateTemp(dir, IdentityFile+".tmp*")
	if err != nil {
		return nil, fmt.Errorf("write identity: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("write identity: %w", err)
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("write identity: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("write identity: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("write identity: %w", err)
	}
	// Link instead of rename: if another process created the key meanwhile,
	// keep theirs so both agree on one identity.
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return LoadIdentity(dir)
		}
		if err := os.Rename(tmp.Name(), path); err != nil {
			return nil, fmt.Errorf("write identity: %w", err)
		}
	}
	return k, nil
}

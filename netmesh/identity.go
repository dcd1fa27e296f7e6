package netmesh

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/libp2p/go-libp2p/core/crypto"
)

// Key files inside the data dir.
const (
	// IdentityFile is the node's private key: its peer ID.
	IdentityFile = "p2p_identity.key"
	// OwnerKeyFile is the owner key of the networks this machine created:
	// it signs their member removals.
	OwnerKeyFile = "network_owner.key"
)

// LoadIdentity returns the libp2p private key kept in dir, creating it (mode
// 0600) on first use so a restarted node keeps its peer ID. With an empty dir
// the key is ephemeral.
func LoadIdentity(dir string) (crypto.PrivKey, error) {
	if dir == "" {
		k, _, err := crypto.GenerateEd25519Key(nil) // nil reader: crypto/rand
		return k, err
	}
	return loadOrCreateKey(dir, IdentityFile, "identity")
}

// OwnerKey returns the owner key kept in dir, creating it (mode 0600) on
// first use. A network made with NewOwnedToken(key.GetPublic()) names it as
// its owner.
func OwnerKey(dir string) (crypto.PrivKey, error) {
	if dir == "" {
		return nil, errors.New("owner key: no data dir")
	}
	return loadOrCreateKey(dir, OwnerKeyFile, "owner key")
}

// LoadOwnerKey returns the owner key kept in dir; an error wrapping
// fs.ErrNotExist means this machine created no network.
func LoadOwnerKey(dir string) (crypto.PrivKey, error) {
	path := filepath.Join(dir, OwnerKeyFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	k, err := crypto.UnmarshalPrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("owner key %s is corrupt (%v)", path, err)
	}
	return k, nil
}

func loadOrCreateKey(dir, file, what string) (crypto.PrivKey, error) {
	path := filepath.Join(dir, file)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		k, err := crypto.UnmarshalPrivateKey(b)
		if err != nil {
			return nil, fmt.Errorf("%s %s is corrupt (%v): move it away to create a new one", what, path, err)
		}
		if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
			if err := os.Chmod(path, 0o600); err != nil {
				return nil, fmt.Errorf("restrict permissions of %s: %w", path, err)
			}
		}
		return k, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("read %s: %w", what, err)
	}

	k, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		return nil, fmt.Errorf("generate %s: %w", what, err)
	}
	b, err = crypto.MarshalPrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", what, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	tmp, err := os.CreateTemp(dir, file+".tmp*")
	if err != nil {
		return nil, fmt.Errorf("write "+what+": %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("write "+what+": %w", err)
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("write "+what+": %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("write "+what+": %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("write "+what+": %w", err)
	}
	// Link instead of rename: if another process created the key meanwhile,
	// keep theirs so both agree on one identity.
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return loadOrCreateKey(dir, file, what)
		}
		if err := os.Rename(tmp.Name(), path); err != nil {
			return nil, fmt.Errorf("write "+what+": %w", err)
		}
	}
	return k, nil
}

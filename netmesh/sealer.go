package netmesh

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"sync"

	"github.com/mudler/edgevpn/pkg/node"
)

// sealer encrypts EdgeVPN hub messages (heartbeats, notices and EdgeVPN's
// own ledger syncs) with
// AES-256-GCM under the hub's rotating key, like EdgeVPN's AESSealer, but
// encodes them in base64 rather than hex: a third less mesh traffic. Only
// Potluck nodes can join a Potluck mesh (see handshakeKey), so the format is
// ours to choose.
type sealer struct {
	mu   sync.Mutex
	key  string
	aead cipher.AEAD
}

var _ node.Sealer = (*sealer)(nil)

func (s *sealer) cipher(key string) (cipher.AEAD, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.aead != nil && s.key == key {
		return s.aead, nil
	}
	var k [32]byte
	copy(k[:], key)
	block, err := aes.NewCipher(k[:])
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	s.key, s.aead = key, aead
	return aead, nil
}

func (s *sealer) Seal(message, key string) (string, error) {
	aead, err := s.cipher(key)
	if err != nil {
		return "", err
	}
	buf := make([]byte, aead.NonceSize(), aead.NonceSize()+len(message)+aead.Overhead())
	rand.Read(buf)
	return base64.RawStdEncoding.EncodeToString(aead.Seal(buf, buf, []byte(message), nil)), nil
}

func (s *sealer) Unseal(message, key string) (string, error) {
	aead, err := s.cipher(key)
	if err != nil {
		return "", err
	}
	b, err := base64.RawStdEncoding.DecodeString(message)
	if err != nil {
		return "", errors.New("unseal: not base64")
	}
	if len(b) < aead.NonceSize() {
		return "", errors.New("unseal: message too short")
	}
	out, err := aead.Open(nil, b[:aead.NonceSize()], b[aead.NonceSize():], nil)
	if err != nil {
		return "", errors.New("unseal: message does not authenticate")
	}
	return string(out), nil
}

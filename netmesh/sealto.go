package netmesh

import (
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/hpke"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/crypto"
)

// A member can be sent a secret that no other token holder can read: every
// node derives an HPKE key pair (X25519, RFC 9180) from its identity key and
// announces the public half, signed, in its NodeInfo as SealKey. The token's
// own keys cannot do this: every member, and a removed one, holds them.

var (
	sealKEM  = hpke.DHKEM(ecdh.X25519())
	sealKDF  = hpke.HKDFSHA256()
	sealAEAD = hpke.ChaCha20Poly1305()
)

// sealKeyOf derives the node's HPKE private key from its identity.
func sealKeyOf(priv crypto.PrivKey) (hpke.PrivateKey, error) {
	raw, err := priv.Raw()
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	ikm, err := hkdf.Key(sha256.New, raw, nil, "potluck seal key v1", 32)
	if err != nil {
		return nil, err
	}
	return sealKEM.DeriveKeyPair(ikm)
}

// SealTo encrypts plaintext so that only the node that announced info can
// read it. context binds the ciphertext to its purpose; OpenSealed must be
// given the same.
func SealTo(info NodeInfo, context, plaintext []byte) ([]byte, error) {
	if info.SealKey == "" {
		return nil, fmt.Errorf("%s announced no seal key (it runs an older Potluck)", info.Name)
	}
	raw, err := base64.RawStdEncoding.DecodeString(info.SealKey)
	if err != nil {
		return nil, errors.New("seal key is not base64")
	}
	pk, err := sealKEM.NewPublicKey(raw)
	if err != nil {
		return nil, fmt.Errorf("seal key: %w", err)
	}
	return hpke.Seal(pk, sealKDF, sealAEAD, context, plaintext)
}

// OpenSealed decrypts what SealTo sealed to this node.
func (n *Node) OpenSealed(context, ciphertext []byte) ([]byte, error) {
	return hpke.Open(n.sealKey, sealKDF, sealAEAD, context, ciphertext)
}

func encodeSealKey(k hpke.PrivateKey) string {
	return base64.RawStdEncoding.EncodeToString(k.PublicKey().Bytes())
}

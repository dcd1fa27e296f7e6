package netmesh

import (
	"bytes"
	"encoding/base64"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

func testKey(t *testing.T) (crypto.PrivKey, string) {
	t.Helper()
	k, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return k, id.String()
}

// Only a validly signed message unseals: anything tampered with, or not an
// envelope at all, is refused.
func TestUnsealRefuses(t *testing.T) {
	k, _ := testKey(t)
	good, err := seal(k, codecHeartbeat, []byte(`{"v":2}`))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.RawStdEncoding.DecodeString(good)
	for i := range raw {
		bad := bytes.Clone(raw)
		bad[i] ^= 0x04
		if signer, _, payload, err := unseal(base64.RawStdEncoding.EncodeToString(bad)); err == nil && string(payload) != `{"v":2}` {
			t.Fatalf("byte %d flipped: accepted %q from %s", i, payload, signer)
		}
	}
	for name, msg := range map[string]string{
		"not base64": "%%%", "empty": "", "JSON": `{"v":2,"id":"x"}`,
		"random bytes": base64.RawStdEncoding.EncodeToString([]byte{1, 2, 3, 4, 5}),
	} {
		if _, _, _, err := unseal(msg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestUnsealNamesTheSigner(t *testing.T) {
	k, id := testKey(t)
	msg, err := seal(k, codecNotice, []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	signer, codec, payload, err := unseal(msg)
	if err != nil || signer.String() != id || string(codec) != string(codecNotice) || string(payload) != "hello" {
		t.Fatalf("unseal = %s %q %q %v", signer, codec, payload, err)
	}
}

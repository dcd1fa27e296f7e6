package netmesh

import (
	"encoding/base64"
	"encoding/json"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/mudler/edgevpn/pkg/blockchain"
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

// ledgerValue is how EdgeVPN's ledger hands back a string value.
func ledgerValue(t *testing.T, v any) blockchain.Data {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return blockchain.Data(b)
}

// A ledger entry counts only when it is the NodeInfo of the member it is
// filed under, signed by that member.
func TestLedgerEntriesMustBeSignedByTheirMember(t *testing.T) {
	n := &Node{}
	kb, b := testKey(t)
	kf, _ := testKey(t)
	info, _ := json.Marshal(NodeInfo{PeerID: b, Name: "b"})
	other, _ := json.Marshal(NodeInfo{PeerID: "someone", Name: "b"})
	good, err := seal(kb, codecNodeInfo, info)
	if err != nil {
		t.Fatal(err)
	}
	byForger, _ := seal(kf, codecNodeInfo, info)
	wrongType, _ := seal(kb, codecHeartbeat, info)
	wrongID, _ := seal(kb, codecNodeInfo, other)
	raw, _ := base64.RawStdEncoding.DecodeString(good)
	raw[len(raw)/2] ^= 1
	tampered := base64.RawStdEncoding.EncodeToString(raw)

	if got, ok := n.ledgerEntry(b, ledgerValue(t, good)); !ok || got.Name != "b" {
		t.Fatalf("a signed entry was refused: %+v %v", got, ok)
	}
	for name, v := range map[string]any{
		"signed by another key":  byForger,
		"another message type":   wrongType,
		"info for another id":    wrongID,
		"tampered":               tampered,
		"unsigned NodeInfo":      NodeInfo{PeerID: b, Name: "b"},
		"not base64":             "%%%",
		"empty":                  "",
		"an envelope for nobody": base64.RawStdEncoding.EncodeToString([]byte{1, 2, 3}),
	} {
		if got, ok := n.ledgerEntry(b, ledgerValue(t, v)); ok {
			t.Errorf("%s: accepted %+v", name, got)
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

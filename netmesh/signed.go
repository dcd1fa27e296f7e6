package netmesh

import (
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/record"
)

// Every message a member puts on the mesh (heartbeats, which carry its
// NodeInfo, and notices) travels in a libp2p signed envelope. The token's keys only say
// that the sender holds the token; the envelope says which member sent it,
// so no token holder can speak for another.
const signDomain = "potluck-mesh"

// Payload types of the envelopes: short, as every heartbeat carries one.
var (
	codecHeartbeat = []byte("hb2")
	codecNotice    = []byte("nt1")
	codecLeaving   = []byte("lv1")
)

// maxEnvelope bounds a signed message before it is parsed.
const maxEnvelope = 1 << 20

// signedRecord is an opaque payload in a signed envelope.
type signedRecord struct {
	codec   []byte
	payload []byte
}

var _ record.Record = (*signedRecord)(nil)

func (r *signedRecord) Domain() string                 { return signDomain }
func (r *signedRecord) Codec() []byte                  { return r.codec }
func (r *signedRecord) MarshalRecord() ([]byte, error) { return r.payload, nil }
func (r *signedRecord) UnmarshalRecord(b []byte) error { r.payload = b; return nil }

// seal signs payload as a message of the given type and encodes it for the
// mesh's text channels.
func seal(priv crypto.PrivKey, codec, payload []byte) (string, error) {
	env, err := record.Seal(&signedRecord{codec: codec, payload: payload}, priv)
	if err != nil {
		return "", fmt.Errorf("sign message: %w", err)
	}
	b, err := env.Marshal()
	if err != nil {
		return "", fmt.Errorf("sign message: %w", err)
	}
	return base64.RawStdEncoding.EncodeToString(b), nil
}

// errBadSignature is any message that is not a valid signed envelope.
var errBadSignature = errors.New("not a validly signed message")

// unseal checks a message sealed by seal and returns its signer, its type
// and its payload.
func unseal(msg string) (signer peer.ID, codec, payload []byte, err error) {
	if len(msg) > base64.RawStdEncoding.EncodedLen(maxEnvelope) {
		return "", nil, nil, errBadSignature
	}
	raw, err := base64.RawStdEncoding.DecodeString(msg)
	if err != nil {
		return "", nil, nil, errBadSignature
	}
	env, err := record.UnmarshalEnvelope(raw)
	if err != nil {
		return "", nil, nil, errBadSignature
	}
	rec := &signedRecord{codec: env.PayloadType}
	if _, err := record.ConsumeTypedEnvelope(raw, rec); err != nil {
		return "", nil, nil, errBadSignature
	}
	id, err := peer.IDFromPublicKey(env.PublicKey)
	if err != nil {
		return "", nil, nil, errBadSignature
	}
	return id, env.PayloadType, rec.payload, nil
}

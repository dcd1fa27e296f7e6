package netmeshtest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/record"

	"github.com/potluck-gpu/potluck/netmesh"
)

// Forger is a holder of the token that tries to speak for other members: it
// publishes heartbeats under their peer ids, unsigned, signed by its own key,
// or tampered with, and replays what they really sent. It is the attacker
// of the tests that show members cannot be impersonated.
//
// The wire format is written out here as an attacker would: from what
// crosses the mesh, not from netmesh's internals.
type Forger struct {
	key crypto.PrivKey

	mu       sync.Mutex
	node     *netmesh.Node
	captured map[peer.ID][]string // raw messages each member really sent, oldest first
}

// NewForger returns a forger that listens to the mesh of a node started
// with cfg; cfg.Tap is set here. Start the node, then give it to Attach.
func NewForger(cfg *netmesh.Config) (*Forger, error) {
	key, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		return nil, err
	}
	f := &Forger{key: key, captured: map[peer.ID][]string{}}
	cfg.Tap = f.capture
	return f, nil
}

// Attach gives the forger the node it publishes through.
func (f *Forger) Attach(n *netmesh.Node) {
	f.mu.Lock()
	f.node = n
	f.mu.Unlock()
}

func (f *Forger) capture(msg string) {
	raw, err := base64.RawStdEncoding.DecodeString(msg)
	if err != nil {
		return
	}
	env, err := record.UnmarshalEnvelope(raw)
	if err != nil {
		return
	}
	id, err := peer.IDFromPublicKey(env.PublicKey)
	if err != nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c := append(f.captured[id], msg)
	if len(c) > 64 {
		c = c[len(c)-64:]
	}
	f.captured[id] = c
}

// Captured is how many messages of victim the forger holds for replays.
func (f *Forger) Captured(victim string) int {
	id, err := peer.Decode(victim)
	if err != nil {
		return 0
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.captured[id])
}

// forgedHeartbeat is a heartbeat as it crosses the mesh.
func forgedHeartbeat(id string, seq uint64, name string) []byte {
	b, _ := json.Marshal(map[string]any{
		"v": 2, "id": id, "boot": fmt.Sprintf("forged-%d", seq),
		// A start far ahead of any real one makes it look like the
		// newest run of the victim.
		"start": time.Now().Add(365 * 24 * time.Hour).UnixNano(), "seq": seq, "every_ms": 1000,
		"info": map[string]any{"peer_id": id, "name": name, "mode": "server", "models": []string{"forged-model"}, "memory_offered": 1 << 40},
	})
	return b
}

type rawRecord struct {
	codec, payload []byte
}

func (r *rawRecord) Domain() string                 { return "potluck-mesh" }
func (r *rawRecord) Codec() []byte                  { return r.codec }
func (r *rawRecord) MarshalRecord() ([]byte, error) { return r.payload, nil }
func (r *rawRecord) UnmarshalRecord(b []byte) error { r.payload = b; return nil }

func (f *Forger) signed(payload []byte) string {
	env, err := record.Seal(&rawRecord{codec: []byte("hb2"), payload: payload}, f.key)
	if err != nil {
		panic(err)
	}
	b, err := env.Marshal()
	if err != nil {
		panic(err)
	}
	return base64.RawStdEncoding.EncodeToString(b)
}

// Attempt is one forged message and what it tried.
type Attempt struct {
	Kind string
	Sent bool
}

// ForgeAs publishes one round of every kind of forgery against victim,
// under the display name name, and returns what it sent. round makes each
// round's messages different.
func (f *Forger) ForgeAs(victim, name string, round uint64) []Attempt {
	f.mu.Lock()
	n := f.node
	var replays []string
	if id, err := peer.Decode(victim); err == nil {
		replays = append(replays, f.captured[id]...)
	}
	f.mu.Unlock()
	if n == nil {
		return nil
	}
	var out []Attempt
	send := func(kind, msg string) {
		out = append(out, Attempt{Kind: kind, Sent: n.Publish(msg) == nil})
	}
	seq := 1_000_000 + round
	// An unsigned heartbeat, as version 1 sent them.
	send("unsigned", string(forgedHeartbeat(victim, seq, name)))
	// A heartbeat under the victim's id, signed by the forger's own key.
	send("signed by another key", f.signed(forgedHeartbeat(victim, seq, name)))
	// A real message of the victim with its payload changed.
	if len(replays) > 0 {
		raw, _ := base64.RawStdEncoding.DecodeString(replays[len(replays)-1])
		if len(raw) > 8 {
			raw[len(raw)-8] ^= 0x55 // inside the signature or the payload
			send("tampered", base64.RawStdEncoding.EncodeToString(raw))
		}
	}
	// Replays of what the victim really sent: valid signatures, old news.
	for _, m := range replays {
		send("replay", m)
	}
	// A heartbeat for a member that does not exist, to grow the roster.
	other, _, _ := crypto.GenerateEd25519Key(nil)
	if id, err := peer.IDFromPrivateKey(other); err == nil {
		send("unknown id", string(forgedHeartbeat(id.String(), seq, name)))
		send("unknown id, signed by another key", f.signed(forgedHeartbeat(id.String(), seq, name)))
	}
	return out
}

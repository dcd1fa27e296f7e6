package netmesh

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// A heartbeat from a peer whose info this node never had makes it announce
// at once, and its heartbeats ask for that info (Want) until a full
// heartbeat brings it; a heartbeat that asks for this node's info makes
// it announce at once too. Otherwise a joiner that missed the others'
// full heartbeats (sent before the gossip path to it existed) waited
// fullEvery beats to learn who they are.
func TestHeartbeatAsksForMissingInfo(t *testing.T) {
	tok, err := NewToken()
	if err != nil {
		t.Fatal(err)
	}
	n, err := New(Config{Token: tok, Name: "self", HeartbeatInterval: time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	priv, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := peer.IDFromPrivateKey(priv)
	asked := func() bool {
		select {
		case <-n.announce:
			return true
		default:
			return false
		}
	}
	send := func(seq uint64, info *NodeInfo, want ...string) {
		hb := heartbeat{V: heartbeatVersion, ID: other.String(), Boot: "b1", Start: 1, Seq: seq, EveryMS: 1000, Info: info, Want: want}
		b, _ := json.Marshal(hb)
		n.handleHeartbeat(other, b)
	}

	send(1, nil)
	if !asked() {
		t.Error("a peer heard of without its info: no announcement")
	}
	if w := n.roster.missingInfo(maxWant); len(w) != 1 || w[0] != other.String() {
		t.Errorf("missing info %v; want the peer", w)
	}
	send(2, nil)
	if !asked() {
		t.Error("the peer's info is still missing: no announcement")
	}
	send(3, &NodeInfo{Name: "other"})
	asked() // it joined: an announcement either way
	if w := n.roster.missingInfo(maxWant); len(w) != 0 {
		t.Errorf("missing info %v after a full heartbeat", w)
	}
	send(4, nil)
	if asked() {
		t.Error("announced on a plain heartbeat of a known peer")
	}
	send(5, nil, "someone-else")
	if asked() {
		t.Error("announced when the peer asked for another's info")
	}
	send(6, nil, n.ID())
	if !asked() {
		t.Error("the peer asked for this node's info: no announcement")
	}
}

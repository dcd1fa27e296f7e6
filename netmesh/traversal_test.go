package netmesh

import (
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// A member relays a pair one way only, from the lower peer id to the
// higher, and only between admitted members.
func TestRelayACL(t *testing.T) {
	var ids []peer.ID
	for range 3 {
		_, pub, err := crypto.GenerateEd25519Key(nil)
		if err != nil {
			t.Fatal(err)
		}
		id, err := peer.IDFromPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	lo, hi, stranger := min(ids[0], ids[1]), max(ids[0], ids[1]), ids[2]
	n := &Node{cfg: Config{Admit: func(id string) bool { return id != stranger.String() }}}
	acl := relayACL{n}
	for _, c := range []struct {
		src, dest peer.ID
		want      bool
	}{
		{lo, hi, true},
		{hi, lo, false},
		{stranger, hi, false},
		{lo, stranger, false},
	} {
		if got := acl.AllowConnect(c.src, nil, c.dest); got != c.want {
			t.Errorf("AllowConnect(%s → %s) = %v; want %v", c.src.ShortString(), c.dest.ShortString(), got, c.want)
		}
	}
	if acl.AllowReserve(stranger, nil) || !acl.AllowReserve(hi, nil) {
		t.Error("reservations: a stranger was admitted, or a member refused")
	}
}

package app

import (
	"strings"
	"testing"

	"github.com/potluck-gpu/potluck/netmesh"
	"github.com/potluck-gpu/potluck/nodestate"
)

// A split leaves out workers reached only through a relay, or too far
// away, and says why; the rest may join.
func TestSplitUnfit(t *testing.T) {
	for _, c := range []struct {
		p       nodestate.Peer
		inSplit bool
		want    string
	}{
		{nodestate.Peer{Conn: netmesh.ConnDirect, RTTMS: 2, MinRTTMS: 2}, false, ""},
		{nodestate.Peer{Conn: netmesh.ConnHolePunched, RTTMS: 30, MinRTTMS: 30}, false, ""},
		{nodestate.Peer{Conn: netmesh.ConnNone}, false, ""},
		{nodestate.Peer{Conn: netmesh.ConnRelayed, RTTMS: 3, MinRTTMS: 3}, false, "relay"},
		{nodestate.Peer{Conn: netmesh.ConnRelayLost}, true, "relay"},
		{nodestate.Peer{Conn: netmesh.ConnHolePunched, RTTMS: 180, MinRTTMS: 180}, false, "round trip of 180 ms"},
		// One slow round trip (a busy moment) does not count.
		{nodestate.Peer{Conn: netmesh.ConnDirect, RTTMS: 400, MinRTTMS: 3}, false, ""},
		// A worker in the split while the load fills its link stays.
		{nodestate.Peer{Conn: netmesh.ConnDirect, RTTMS: 900, MinRTTMS: 900}, true, ""},
	} {
		got := splitUnfit(c.p, c.inSplit)
		if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("splitUnfit(%s, %.0f ms) = %q; want %q", c.p.Conn, c.p.RTTMS, got, c.want)
		}
	}
}

// An invite's addresses are split from the network's token, which is what
// the node keeps and compares.
func TestSplitInvite(t *testing.T) {
	bare, err := netmesh.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	if got, addrs := splitInvite(bare); got != bare || addrs != nil {
		t.Errorf("a token without addresses changed: %v", addrs)
	}
	tok, _ := netmesh.ParseToken(bare)
	addr := "/ip4/11.77.0.10/tcp/4101/p2p/12D3KooWGzh8hnxxd3QX5ubT1pVXFMtBwEJQgoVzgTk3xnrKUyAG"
	invite, _ := tok.WithAddrs([]string{addr}).Encode()
	got, addrs := splitInvite(invite)
	back, err := netmesh.ParseToken(got)
	if err != nil || !back.SameNetwork(tok) || len(back.Addrs()) != 0 || len(addrs) != 1 || addrs[0] != addr {
		t.Errorf("splitInvite = %v %q, %v", back, addrs, err)
	}
}

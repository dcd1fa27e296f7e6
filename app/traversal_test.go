package app

import (
	"testing"

	"github.com/potluck-gpu/potluck/netmesh"
)

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

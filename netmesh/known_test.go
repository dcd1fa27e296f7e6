package netmesh_test

import (
	"context"
	"github.com/potluck-gpu/potluck/internal/atomicfile"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/netmesh"
	"github.com/potluck-gpu/potluck/netmesh/netmeshtest"
)

// Members join with an invite's addresses alone, remember each other, and
// a member that restarts finds the others again while the inviter is gone:
// the members' DHT runs among them without a public bootstrap node.
func TestRejoinWithoutInviter(t *testing.T) {
	tok, err := netmesh.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	cfg := func(name string) netmesh.Config {
		c := netmeshtest.Config(t, tok, name)
		c.DisableDHT = false
		return c
	}
	inviterCfg := cfg("inviter")
	inviterCtx, stopInviter := context.WithCancel(context.Background())
	inviter, err := netmesh.New(inviterCfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	inviterDone := make(chan error, 1)
	go func() { inviterDone <- inviter.Run(inviterCtx) }()
	if err := inviter.Up(context.Background()); err != nil {
		t.Fatal(err)
	}
	parsed, _ := netmesh.ParseToken(tok)
	invite, err := parsed.WithAddrs(inviter.InviteAddrs()).Encode()
	if err != nil {
		t.Fatal(err)
	}
	if len(inviter.InviteAddrs()) == 0 {
		t.Fatal("the inviter's invite carries no address")
	}

	carol := netmeshtest.Start(t, func() netmesh.Config { c := cfg("carol"); c.Token = invite; return c }(), nil)
	bobCfg := cfg("bob")
	bobCfg.Token = invite
	bobCtx, stopBob := context.WithCancel(context.Background())
	bob, err := netmesh.New(bobCfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	bobDone := make(chan error, 1)
	go func() { bobDone <- bob.Run(bobCtx) }()
	netmeshtest.WaitConverged(t, []*netmesh.Node{inviter, carol, bob}, 30*time.Second)

	// The inviter leaves, then bob stops: his address book is on disk.
	stopInviter()
	<-inviterDone
	stopBob()
	if err := <-bobDone; err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(bobCfg.DataDir, "peers.json")); err != nil || !atomicfile.Private(fi) {
		t.Fatalf("address book: %v %v", fi, err)
	}

	// Bob comes back with the bare token: no address to start from but
	// what he remembers.
	again := bobCfg
	again.Token = tok
	bob2 := netmeshtest.Start(t, again, nil)
	netmeshtest.WaitFor(t, 30*time.Second, func() bool {
		p, ok := bob2.Peer(carol.ID())
		return ok && p.Online && p.Conn == netmesh.ConnDirect
	}, "bob, restarted, to find carol from his address book")
	if p, ok := bob2.Peer(inviter.ID()); ok && p.Online {
		t.Error("the inviter, stopped, is online")
	}
}

package lab_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/engine/enginetest"
	"github.com/potluck-gpu/potluck/lab"
)

// Three machines: a server with a daily limit per peer and two clients.
// Requests from both clients and the server itself; every ledger agrees on
// who served whom, to the token the answers reported; the limit turns one
// client's requests into 429s at the right count while the other client
// and the server's own requests go on.
func TestLabLedger(t *testing.T) {
	enginetest.Runtime(t)
	m := enginetest.TestModel(t)
	const limit = 40
	nw := lab.New(t, 3, lab.Options{Args: func(i int) []string {
		if i == 0 {
			return []string{"--name", "server", "--model", m.Path, "--share", "server", "--share-limit", fmt.Sprint(limit)}
		}
		return []string{"--name", []string{"", "one", "two"}[i]}
	}})
	s, c1, c2 := nw.Nodes[0], nw.Nodes[1], nw.Nodes[2]
	ids := []string{s.PeerID(), c1.PeerID(), c2.PeerID()}
	for _, c := range []*lab.Node{c1, c2} {
		nw.Wait(c.Name+" routing to the server", time.Minute, func() bool {
			nodes, err := c.ModelNodes()
			return err == nil && len(nodes[m.Alias]) == 1
		})
		// The 429 names the client: the server must have its info (a
		// member first heard of by a bare heartbeat has no name yet).
		name := []string{"", "one", "two"}[c.Index]
		nw.Wait("the server to know "+name+" by name", time.Minute, func() bool {
			p, ok := s.PeerByName(name)
			return ok && p.Online
		})
	}
	ask := func(n *lab.Node) (int, error) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		c, err := n.Complete(ctx, 8)
		return c.Prompt + c.Tokens, err
	}
	want := map[string]int{}
	served, limited := 0, false
	for range 12 {
		tokens, err := ask(c1)
		if err != nil {
			if !strings.Contains(err.Error(), "429") || !strings.Contains(err.Error(), "one has used its daily share of server") {
				t.Fatalf("client one: %v", err)
			}
			limited = true
			break
		}
		if served >= limit {
			t.Errorf("served client one again after %d tokens (limit %d)", served, limit)
		}
		served += tokens
		want[ids[1]] += tokens
	}
	if !limited {
		t.Fatalf("client one was never limited: %d tokens served, limit %d", served, limit)
	}
	for _, n := range []*lab.Node{c2, c2, s} {
		tokens, err := ask(n)
		if err != nil {
			t.Fatalf("after one's limit, %s: %v", n.Name, err)
		}
		want[ids[n.Index]] += tokens
	}
	expect := fmt.Sprint(map[string]int{"server<-one": want[ids[1]], "server<-two": want[ids[2]], "server<-server": want[ids[0]]})
	names := map[string]string{ids[0]: "server", ids[1]: "one", ids[2]: "two"}
	took := nw.Wait("the three ledgers to agree", time.Minute, func() bool {
		for _, n := range nw.Nodes {
			var u struct {
				Pairs []struct {
					Server, Asker string
					In            float64 `json:"tokens_in"`
					Out           float64 `json:"tokens_out"`
				} `json:"pairs"`
			}
			if n.GetJSON("/api/usage", &u) != nil {
				return false
			}
			got := map[string]int{}
			for _, p := range u.Pairs {
				got[names[p.Server]+"<-"+names[p.Asker]] = int(p.In + p.Out + 0.5)
			}
			if fmt.Sprint(got) != expect {
				return false
			}
		}
		return true
	})
	t.Logf("LAB ledger: all three agree on %s, %s after the last request; one limited after %d tokens (limit %d)", expect, took.Round(time.Millisecond), served, limit)
}

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/engine/enginetest"
	"github.com/potluck-gpu/potluck/internal/nodetest"
	"github.com/potluck-gpu/potluck/nodestate"
)

// complete asks node p's API for a short completion and returns the status,
// the tokens the answer says it used (in and out), and the body.
func complete(t *testing.T, p *proc, model string) (int, int, string) {
	t.Helper()
	body := fmt.Sprintf(`{"model":%q,"prompt":"","max_tokens":8,"temperature":0}`, model)
	resp, err := http.Post(p.API+"/v1/completions", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Usage struct {
			Prompt     int `json:"prompt_tokens"`
			Completion int `json:"completion_tokens"`
		} `json:"usage"`
	}
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, out.Usage.Prompt + out.Usage.Completion, string(raw)
}

// Three nodes: a server with a daily limit per peer, and two clients. The
// ledgers of all three agree on who served whom, to the token the answers
// reported; the limit turns one client's requests into 429s at the right
// count while the other client and the server's own requests go on.
func TestLedgerAndShareLimit(t *testing.T) {
	m := enginetest.TestModel(t)
	token := newToken(t)
	env := []string{"POTLUCK_P2P_HEARTBEAT=1s"}
	const limit = 30
	s := startPotluckEnv(t, env, meshArgs(token, "--name", "server", "--model", m.Path, "--share", "server", "--share-limit", fmt.Sprint(limit))...)
	boot := s.meshStatus(t).P2PAddrs[0]
	c1 := startPotluckEnv(t, env, meshArgs(token, "--name", "one", "--bootstrap", boot)...)
	c2 := startPotluckEnv(t, env, meshArgs(token, "--name", "two", "--bootstrap", boot)...)
	sID, id1, id2 := s.meshStatus(t).PeerID, c1.meshStatus(t).PeerID, c2.meshStatus(t).PeerID
	var model string
	waitFor(t, 30*time.Second, "both clients to route to the server", func() bool {
		for _, c := range []*proc{c1, c2} {
			var models struct{ Data []struct{ ID string } }
			if nodetest.GetJSON(c.API+"/v1/models", &models) != nil || len(models.Data) != 1 {
				return false
			}
			model = models.Data[0].ID
		}
		return true
	})

	// Client one until the limit; client two and the server itself after.
	want := map[string]int{} // asker -> tokens, as the answers said
	served, limited := 0, false
	for range 10 {
		status, tokens, body := complete(t, c1, model)
		if status == http.StatusTooManyRequests {
			if !strings.Contains(body, "one has used its daily share of server") || !strings.Contains(body, "resets at") {
				t.Errorf("the 429 does not say whose limit and when it resets: %s", body)
			}
			limited = true
			break
		}
		if status != http.StatusOK || tokens == 0 {
			t.Fatalf("client one: %d, %d tokens: %s", status, tokens, body)
		}
		if served >= limit {
			t.Errorf("served client one again after %d tokens (limit %d)", served, limit)
		}
		served += tokens
		want[id1] += tokens
	}
	if !limited || served < limit {
		t.Fatalf("client one was never limited, or too early: %d tokens served, limit %d", served, limit)
	}
	for _, c := range []struct {
		p  *proc
		id string
	}{{c2, id2}, {c2, id2}, {s, sID}} {
		status, tokens, body := complete(t, c.p, model)
		if status != http.StatusOK {
			t.Fatalf("after one's limit, %s got %d: %s", c.id, status, body)
		}
		want[c.id] += tokens
	}

	// Every node's accounts: the same pairs, to the token.
	expect := fmt.Sprint(map[string]int{sID + "<-" + id1: want[id1], sID + "<-" + id2: want[id2], sID + "<-" + sID: want[sID]})
	var last string
	waitFor(t, 30*time.Second, "the three ledgers to agree", func() bool {
		for _, p := range []*proc{s, c1, c2} {
			var u nodestate.Usage
			if nodetest.GetJSON(p.API+"/api/usage", &u) != nil {
				return false
			}
			got := map[string]int{}
			for _, pr := range u.Pairs {
				got[pr.Server+"<-"+pr.Asker] = int(pr.TokensIn + pr.TokensOut + 0.5)
			}
			if last = fmt.Sprint(got); last != expect {
				return false
			}
		}
		return true
	})
	// What each machine gave and used.
	var u1, us nodestate.Usage
	nodetest.GetJSON(c1.API+"/api/usage", &u1)
	nodetest.GetJSON(s.API+"/api/usage", &us)
	if i := slices.IndexFunc(u1.Peers, func(p nodestate.PeerUsage) bool { return p.ID == sID }); i < 0 || int(u1.Peers[i].Used.Today) != want[id1] || u1.Used.All != u1.Peers[i].Used.All {
		t.Errorf("client one's usage: %+v; want %d used from the server", u1, want[id1])
	}
	if int(us.Gave.Week) != want[id1]+want[id2] || us.ShareLimit != limit {
		t.Errorf("server's usage: %+v; want %d given", us, want[id1]+want[id2])
	}
	var out strings.Builder
	if code := realMain([]string{"usage", "--api", strings.TrimPrefix(c1.API, "http://")}, &out, &out); code != 0 || !strings.Contains(out.String(), "server") {
		t.Errorf("potluck usage: %d\n%s", code, out.String())
	}
}

// waitFor polls cond until it holds, failing the test after within.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(within)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

package main

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/engine/enginetest"
	"github.com/potluck-gpu/potluck/internal/nodetest"
)

// federation starts two nodes serving the test model and a client node with
// no model, all in one mesh, and waits until the client sees both servers.
func federation(t *testing.T) (a, b, c *proc, model string) {
	t.Helper()
	m := enginetest.TestModel(t)
	token := newToken(t)
	env := []string{"POTLUCK_P2P_HEARTBEAT=1s"}
	// Four request slots of 512 tokens each.
	a = startPotluckEnv(t, env, meshArgs(token, "--name", "alpha", "--model", m.Path, "--share", "server", "--ctx-size", "2048")...)
	boot := a.meshStatus(t).P2PAddrs[0]
	b = startPotluckEnv(t, env, meshArgs(token, "--name", "bravo", "--model", m.Path, "--share", "server", "--ctx-size", "2048", "--bootstrap", boot)...)
	c = startPotluckEnv(t, env, meshArgs(token, "--name", "client", "--bootstrap", boot)...)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		var models struct {
			Data []struct {
				ID      string
				Potluck struct{ Nodes []string } `json:"potluck"`
			} `json:"data"`
		}
		if nodetest.GetJSON(c.API+"/v1/models", &models) == nil && len(models.Data) == 1 && len(models.Data[0].Potluck.Nodes) == 2 {
			return a, b, c, models.Data[0].ID
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("the client node never saw both servers\n%s", c.Logs.String())
	return
}

func TestFederatedRouting(t *testing.T) {
	a, b, c, model := federation(t)
	aID, bID := a.meshStatus(t).PeerID, b.meshStatus(t).PeerID

	var wg sync.WaitGroup
	results := make([]nodetest.Stream, 12)
	for i := range results {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			results[i] = nodetest.StreamChat(ctx, http.DefaultClient, c.API, model, 200)
		}(i)
	}
	wg.Wait()
	served := map[string]int{}
	for i, r := range results {
		if r.Err != nil || r.Status != http.StatusOK || !r.Done {
			t.Errorf("stream %d: %+v", i, r)
		}
		served[r.Node]++
	}
	t.Logf("12 concurrent streams through the client node: %v", served)
	if served["alpha/"+aID] < 3 || served["bravo/"+bID] < 3 {
		t.Errorf("streams were not spread over both servers: %v", served)
	}
}

// Killing a server while requests start: each request completes on the
// other server, or fails only if it had already streamed. None hangs.
func TestFederatedFailover(t *testing.T) {
	a, _, c, model := federation(t)
	const n = 24
	results := make([]nodetest.Stream, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			time.Sleep(time.Duration(i) * 15 * time.Millisecond)
			ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
			defer cancel()
			results[i] = nodetest.StreamChat(ctx, http.DefaultClient, c.API, model, 200)
		}(i)
	}
	time.Sleep(100 * time.Millisecond)
	a.Cmd.Process.Signal(syscall.SIGKILL)
	wg.Wait()
	var completed, brokenAfterStream, failedBefore, hung int
	for i, r := range results {
		switch r.Outcome(45 * time.Second) {
		case nodetest.Hung:
			hung++
			t.Errorf("request %d hung: %+v", i, r)
		case nodetest.Completed:
			completed++
		case nodetest.FailedAfterStream:
			brokenAfterStream++
			t.Logf("request %d broke after streaming: %+v", i, r)
		default:
			failedBefore++
			t.Errorf("request %d failed before streaming: %+v: %v", i, r, r.Err)
		}
	}
	t.Logf("server killed under load: %d completed, %d broken after streaming, %d failed before streaming, %d hung", completed, brokenAfterStream, failedBefore, hung)
	if completed == 0 {
		t.Error("no request completed")
	}
	if failedBefore > 0 {
		for _, l := range strings.Split(c.Logs.String(), "\n") {
			if strings.Contains(l, "WARN") {
				t.Log(l)
			}
		}
	}
}

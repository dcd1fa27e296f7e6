package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/engine/enginetest"
	"github.com/potluck-gpu/potluck/internal/nodetest"
)

// Four machines serve the model and two route requests to them, each under
// load. Every server gets within ±50 % of an even share, as counted by
// X-Potluck-Node over 400 requests: the clients see each other's load in
// what the servers publish. Least-busy routing gives more to a server that
// answers faster, and on a busy machine the four run at speeds up to 40 %
// apart, so an even share is not the goal; a server left out, or one given
// most of the work, is a fault.
func TestRoutingSpreadsOverServers(t *testing.T) {
	m := enginetest.TestModel(t)
	token := newToken(t)
	env := []string{"POTLUCK_P2P_HEARTBEAT=1s"}
	var servers []*proc
	boot := ""
	for i := range 4 {
		args := meshArgs(token, "--name", fmt.Sprintf("server%d", i), "--model", m.Path, "--share", "server", "--ctx-size", "2048")
		if boot != "" {
			args = append(args, "--bootstrap", boot)
		}
		s := startPotluckEnv(t, env, args...)
		if boot == "" {
			boot = s.meshStatus(t).P2PAddrs[0]
		}
		servers = append(servers, s)
	}
	var clients []*proc
	for i := range 2 {
		clients = append(clients, startPotluckEnv(t, env, meshArgs(token, "--name", fmt.Sprintf("client%d", i), "--bootstrap", boot)...))
	}
	for _, c := range clients {
		deadline := time.Now().Add(60 * time.Second)
		for {
			var models struct {
				Data []struct {
					Potluck struct{ Nodes []string } `json:"potluck"`
				} `json:"data"`
			}
			if nodetest.GetJSON(c.API+"/v1/models", &models) == nil && len(models.Data) == 1 && len(models.Data[0].Potluck.Nodes) == 4 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("a client never saw the 4 servers\n%s", c.Logs.String())
			}
			time.Sleep(200 * time.Millisecond)
		}
	}

	const perWorker, workers = 25, 8 // per client: 8 at a time, 200 requests
	var mu sync.Mutex
	count := map[string]int{}
	busy := map[string]time.Duration{}
	failed := 0
	var wg sync.WaitGroup
	for _, c := range clients {
		for range workers {
			wg.Go(func() {
				for range perWorker {
					ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
					start := time.Now()
					req, _ := http.NewRequestWithContext(ctx, http.MethodPost, c.API+"/v1/completions",
						strings.NewReader(`{"prompt":"Once","max_tokens":48,"temperature":0,"ignore_eos":true}`))
					req.Header.Set("Content-Type", "application/json")
					resp, err := http.DefaultClient.Do(req)
					node := ""
					if err == nil {
						node = resp.Header.Get("X-Potluck-Node")
						buf := make([]byte, 4096)
						for {
							if _, rerr := resp.Body.Read(buf); rerr != nil {
								break
							}
						}
						resp.Body.Close()
					}
					cancel()
					took := time.Since(start)
					mu.Lock()
					if err != nil || resp.StatusCode != http.StatusOK {
						failed++
					} else {
						name := strings.SplitN(node, "/", 2)[0]
						count[name]++
						busy[name] += took
					}
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	total, allBusy := 0, time.Duration(0)
	for name, n := range count {
		total += n
		allBusy += busy[name]
	}
	t.Logf("requests per server: %v, busy time: %v (%d failed)", count, busy, failed)
	if failed > 0 || total != 2*workers*perWorker {
		t.Errorf("%d of %d requests failed", failed, 2*workers*perWorker)
	}
	even := float64(total) / 4
	for i := range 4 {
		name := fmt.Sprintf("server%d", i)
		if n := count[name]; float64(n) < 0.5*even || float64(n) > 1.5*even {
			t.Errorf("%s served %d of %d (busy %v of %v), outside ±50 %% of %.0f",
				name, n, total, busy[name].Round(time.Millisecond), allBusy.Round(time.Millisecond), even)
		}
	}
}

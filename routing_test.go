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
// load. Every server gets within ±30 % of an even share, as counted by
// X-Potluck-Node over 400 requests: the clients see each other's load in
// what the servers publish.
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
	failed := 0
	var wg sync.WaitGroup
	for _, c := range clients {
		for range workers {
			wg.Go(func() {
				for range perWorker {
					ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
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
					mu.Lock()
					if err != nil || resp.StatusCode != http.StatusOK {
						failed++
					} else {
						count[strings.SplitN(node, "/", 2)[0]]++
					}
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	total := 0
	for _, n := range count {
		total += n
	}
	t.Logf("requests per server: %v (%d failed)", count, failed)
	if failed > 0 || total != 2*workers*perWorker {
		t.Errorf("%d of %d requests failed", failed, 2*workers*perWorker)
	}
	even := float64(total) / 4
	for i := range 4 {
		n := count[fmt.Sprintf("server%d", i)]
		if float64(n) < 0.7*even || float64(n) > 1.3*even {
			t.Errorf("server%d served %d of %d, outside ±30 %% of %.0f", i, n, total, even)
		}
	}
}

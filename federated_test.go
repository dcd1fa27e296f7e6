package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/engine/enginetest"
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
		if getJSON(c.api+"/v1/models", &models) == nil && len(models.Data) == 1 && len(models.Data[0].Potluck.Nodes) == 2 {
			return a, b, c, models.Data[0].ID
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("the client node never saw both servers\n%s", c.logs.String())
	return
}

// streamResult is how one streamed request through the API ended.
type streamResult struct {
	node    string
	status  int
	chunks  int
	done    bool // saw [DONE]
	err     error
	elapsed time.Duration
}

func streamChat(ctx context.Context, api, model string, maxTokens int) streamResult {
	start := time.Now()
	body := fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"Tell me a story"}],"max_tokens":%d,"stream":true}`, model, maxTokens)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, api+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return streamResult{err: err, elapsed: time.Since(start)}
	}
	defer resp.Body.Close()
	r := streamResult{node: resp.Header.Get("X-Potluck-Node"), status: resp.StatusCode}
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		r.err = fmt.Errorf("%s", msg)
		r.elapsed = time.Since(start)
		return r
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "data: [DONE]" {
			r.done = true
		} else if strings.HasPrefix(line, "data: ") {
			r.chunks++
		}
	}
	r.err = sc.Err()
	r.elapsed = time.Since(start)
	return r
}

func TestFederatedRouting(t *testing.T) {
	a, b, c, model := federation(t)
	aID, bID := a.meshStatus(t).PeerID, b.meshStatus(t).PeerID

	var wg sync.WaitGroup
	results := make([]streamResult, 12)
	for i := range results {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			results[i] = streamChat(ctx, c.api, model, 200)
		}(i)
	}
	wg.Wait()
	served := map[string]int{}
	for i, r := range results {
		if r.err != nil || r.status != http.StatusOK || !r.done {
			t.Errorf("stream %d: %+v", i, r)
		}
		served[r.node]++
	}
	t.Logf("12 concurrent streams through the client node: %v", served)
	if served["alpha/"+aID] < 3 || served["bravo/"+bID] < 3 {
		t.Errorf("streams were not spread over both servers: %v", served)
	}
}

// The official OpenAI client (the npm package) works against the API.
func TestOpenAISDK(t *testing.T) {
	_, _, c, model := federation(t)
	dir, _ := filepath.Abs("server/testdata/openai-sdk")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "openai")); err != nil {
		t.Fatalf("the openai npm package is not installed in %s: run `make test` (it runs npm install there)", dir)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "sdk-test.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "POTLUCK_BASE_URL="+c.api+"/v1", "POTLUCK_MODEL="+model)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the OpenAI SDK raised: %v\n%s", err, out)
	}
	var res struct {
		Models       []string `json:"models"`
		StreamChunks int      `json:"stream_chunks"`
		Unknown      int      `json:"unknown_model_status"`
	}
	if err := json.Unmarshal(out[strings.LastIndexByte(strings.TrimSpace(string(out)), '\n')+1:], &res); err != nil {
		t.Fatalf("SDK output: %v\n%s", err, out)
	}
	t.Logf("SDK: %s", strings.TrimSpace(string(out)))
	if res.StreamChunks < 2 || res.Unknown != 404 {
		t.Errorf("SDK result %+v", res)
	}
}

// Killing a server while requests start: each request completes on the
// other server, or fails only if it had already streamed. None hangs.
func TestFederatedFailover(t *testing.T) {
	a, _, c, model := federation(t)
	const n = 24
	results := make([]streamResult, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			time.Sleep(time.Duration(i) * 15 * time.Millisecond)
			ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
			defer cancel()
			results[i] = streamChat(ctx, c.api, model, 200)
		}(i)
	}
	time.Sleep(100 * time.Millisecond)
	a.cmd.Process.Signal(syscall.SIGKILL)
	wg.Wait()
	var completed, brokenAfterStream, failedBefore, hung int
	for i, r := range results {
		switch {
		case r.elapsed >= 45*time.Second:
			hung++
			t.Errorf("request %d hung: %+v", i, r)
		case r.status == http.StatusOK && r.done:
			completed++
		case r.status == http.StatusOK && r.chunks > 0:
			brokenAfterStream++
			t.Logf("request %d broke after streaming: %+v", i, r)
		default:
			failedBefore++
			t.Errorf("request %d failed before streaming: %+v: %v", i, r, r.err)
		}
	}
	t.Logf("server killed under load: %d completed, %d broken after streaming, %d failed before streaming, %d hung", completed, brokenAfterStream, failedBefore, hung)
	if completed == 0 {
		t.Error("no request completed")
	}
	if failedBefore > 0 {
		for _, l := range strings.Split(c.logs.String(), "\n") {
			if strings.Contains(l, "WARN") {
				t.Log(l)
			}
		}
	}
}

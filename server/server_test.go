package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/engine"
	"github.com/potluck-gpu/potluck/engine/enginetest"
	"github.com/potluck-gpu/potluck/server"
)

// staticRouter serves one model from fixed backends.
type staticRouter struct {
	model    string
	backends []server.Backend
}

func (r staticRouter) Models() []server.Model {
	return []server.Model{{ID: r.model, Ready: true, State: "ready"}}
}

func (r staticRouter) Backends(model string) ([]server.Backend, error) {
	if model != "" && model != r.model {
		return nil, &server.UnknownModelError{Model: model, Available: []string{r.model}}
	}
	return append([]server.Backend(nil), r.backends...), nil
}

var (
	llamaOnce sync.Once
	llamaURL  string
)

// llama starts one real llama-server shared by this package's tests.
func llama(t *testing.T) (string, enginetest.Model) {
	t.Helper()
	m := enginetest.TestModel(t)
	llamaOnce.Do(func() {
		rt := enginetest.Runtime(t)
		port, err := engine.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		s := engine.NewSupervisor(enginetest.Quick(rt.ServerSupervisorSpec(engine.ServerSpec{
			Model: m.Path, Alias: m.Alias, Port: port, Threads: 1, CtxSize: 2048, Parallel: 8,
		})))
		go s.Run(context.Background()) // lives for the test binary
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if err := s.Up(ctx); err != nil {
			t.Fatal(err)
		}
		llamaURL = fmt.Sprintf("http://127.0.0.1:%d", port)
	})
	if llamaURL == "" {
		t.Fatal("llama-server did not start")
	}
	return llamaURL, m
}

func newServer(t *testing.T, cfg server.Config, r server.Router) *httptest.Server {
	t.Helper()
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	s, err := server.New(cfg, r, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return ts
}

func post(t *testing.T, url, body string, hdr ...string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// deadBackend returns a URL where nothing listens.
func deadBackend(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + l.Addr().String()
	l.Close()
	return url
}

func TestFailoverBeforeFirstByte(t *testing.T) {
	base, m := llama(t)
	busy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"error":{"message":"Loading model"}}`, http.StatusServiceUnavailable)
	}))
	defer busy.Close()
	ts := newServer(t, server.Config{}, staticRouter{model: m.Alias, backends: []server.Backend{
		{Node: "dead/1", BaseURL: deadBackend(t)},
		{Node: "loading/2", BaseURL: busy.URL},
		{Node: "live/3", BaseURL: base},
	}})
	// Whatever order the selector tries them in, the live one answers.
	for i := 0; i < 10; i++ {
		resp := post(t, ts.URL+"/v1/completions", `{"prompt":"Once","max_tokens":4,"temperature":0}`)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Potluck-Node") != "live/3" {
			t.Fatalf("try %d: %s from %q, want 200 from live/3", i, resp.Status, resp.Header.Get("X-Potluck-Node"))
		}
	}
	// With no live backend left the client gets a clear 502, not a hang.
	ts2 := newServer(t, server.Config{}, staticRouter{model: m.Alias, backends: []server.Backend{{Node: "dead/1", BaseURL: deadBackend(t)}}})
	resp := post(t, ts2.URL+"/v1/completions", `{"prompt":"Once","max_tokens":4}`)
	var e struct{ Error struct{ Message string } }
	json.NewDecoder(resp.Body).Decode(&e)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(e.Error.Message, "dead/1") || resp.Header.Get("Retry-After") != "" {
		t.Errorf("all dead: %s %q, Retry-After %q", resp.Status, e.Error.Message, resp.Header.Get("Retry-After"))
	}
	// A backend that is still loading is worth a retry: 503 and Retry-After.
	ts3 := newServer(t, server.Config{}, staticRouter{model: m.Alias, backends: []server.Backend{{Node: "loading/2", BaseURL: busy.URL}}})
	resp = post(t, ts3.URL+"/v1/completions", `{"prompt":"Once","max_tokens":4}`)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("only a loading backend: %s, Retry-After %q; want 503 with Retry-After", resp.Status, resp.Header.Get("Retry-After"))
	}
}

func TestExposureNeedsKey(t *testing.T) {
	if _, err := server.New(server.Config{Addr: "0.0.0.0:0"}, staticRouter{}, nil, nil); err == nil || !strings.Contains(err.Error(), "--api-key") {
		t.Errorf("0.0.0.0 without a key: %v, want a refusal naming --api-key", err)
	}
	base, m := llama(t)
	ts := newServer(t, server.Config{Addr: "0.0.0.0:0", APIKey: "s3cret-key"}, staticRouter{model: m.Alias, backends: []server.Backend{{Node: "n/1", BaseURL: base}}})
	for _, tc := range []struct {
		auth string
		want int
	}{
		{"", http.StatusUnauthorized},
		{"Bearer wrong", http.StatusUnauthorized},
		{"s3cret-key", http.StatusUnauthorized}, // no Bearer
		{"Bearer s3cret-key", http.StatusOK},
	} {
		resp := post(t, ts.URL+"/v1/completions", `{"prompt":"x","max_tokens":2}`, "Authorization", tc.auth)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("Authorization %q: %s, want %d", tc.auth, resp.Status, tc.want)
		}
	}
}

func TestBadInput(t *testing.T) {
	base, m := llama(t)
	ts := newServer(t, server.Config{MaxBody: 1 << 16}, staticRouter{model: m.Alias, backends: []server.Backend{{Node: "n/1", BaseURL: base}}})
	huge := `{"prompt":"` + strings.Repeat("a", 1<<17) + `"}`
	for _, tc := range []struct {
		name, path, body string
		want             int
	}{
		{"malformed", "/v1/chat/completions", `{"messages":[`, 400},
		{"not an object", "/v1/completions", `[1,2]`, 400},
		{"huge", "/v1/completions", huge, 413},
		{"unknown model", "/v1/completions", `{"model":"gpt-9","prompt":"x"}`, 404},
		{"negative max_tokens", "/v1/completions", `{"prompt":"x","max_tokens":-5}`, 400},
		{"no route", "/v1/nothing", `{}`, 404},
	} {
		resp := post(t, ts.URL+tc.path, tc.body)
		var e struct {
			Error struct{ Message, Type string }
		}
		err := json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if resp.StatusCode != tc.want || err != nil || e.Error.Message == "" || e.Error.Type == "" {
			t.Errorf("%s: %s %+v (%v), want %d with an OpenAI error", tc.name, resp.Status, e, err, tc.want)
		}
		if tc.name == "unknown model" && !strings.Contains(e.Error.Message, m.Alias) {
			t.Errorf("unknown model error does not list the available model: %q", e.Error.Message)
		}
	}
	resp := post(t, ts.URL+"/v1/completions", `{"prompt":"Once","max_tokens":4}`)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("after bad input: %s", resp.Status)
	}
}

func openFDs() int {
	entries, _ := os.ReadDir("/proc/self/fd")
	return len(entries)
}

// Many concurrent streams, some abandoned midway, leave no goroutines or
// file descriptors behind.
func TestConcurrentStreamsLeaveNothingBehind(t *testing.T) {
	base, m := llama(t)
	s, err := server.New(server.Config{Addr: "127.0.0.1:0"}, staticRouter{model: m.Alias, backends: []server.Backend{{Node: "n/1", BaseURL: base}}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	addr, err := s.Up(ctx)
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + addr.String() + "/v1/chat/completions"
	client := &http.Client{Transport: &http.Transport{}}
	// Warm up once so lazily started goroutines are in the baseline.
	r0 := post(t, url, `{"messages":[{"role":"user","content":"hi"}],"max_tokens":2}`)
	r0.Body.Close()
	time.Sleep(200 * time.Millisecond)
	baseG, baseFD := runtime.NumGoroutine(), openFDs()

	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := 0; i < 64; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			rctx, rcancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer rcancel()
			body := `{"messages":[{"role":"user","content":"Tell me a story"}],"max_tokens":12,"stream":true}`
			req, _ := http.NewRequestWithContext(rctx, http.MethodPost, url, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			sc := bufio.NewScanner(resp.Body)
			for lines := 0; sc.Scan(); lines++ {
				if i%4 == 0 && lines == 2 {
					rcancel() // a client that walks away mid-stream
					return
				}
			}
			if resp.StatusCode != http.StatusOK {
				errs <- fmt.Errorf("stream %d: %s", i, resp.Status)
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	client.CloseIdleConnections()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && (runtime.NumGoroutine() > baseG+2 || openFDs() > baseFD+2) {
		time.Sleep(100 * time.Millisecond)
	}
	if g, fd := runtime.NumGoroutine(), openFDs(); g > baseG+2 || fd > baseFD+2 {
		buf := make([]byte, 1<<16)
		t.Errorf("after 64 streams: %d goroutines (baseline %d), %d fds (baseline %d)\n%s", g, baseG, fd, baseFD, buf[:runtime.Stack(buf, true)])
	}
	cancel()
	if err := <-done; err != nil {
		t.Error(err)
	}
}

package server_test

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/potluck-gpu/potluck/engine"
	"github.com/potluck-gpu/potluck/engine/enginetest"
	"github.com/potluck-gpu/potluck/server"
)

// modelsRouter serves several models, each from fixed backends.
type modelsRouter struct {
	models   []server.Model
	backends map[string][]server.Backend
}

func (r modelsRouter) Models() []server.Model { return r.models }

func (r modelsRouter) Backends(model string) ([]server.Backend, error) {
	if model == "" && len(r.models) == 1 {
		model = r.models[0].ID
	}
	bs, ok := r.backends[model]
	if !ok {
		var ids []string
		for _, m := range r.models {
			ids = append(ids, m.ID)
		}
		return nil, &server.UnknownModelError{Model: model, Available: ids}
	}
	return append([]server.Backend(nil), bs...), nil
}

// apiBackends starts, besides the shared llama-server, one serving the
// same model with embeddings and one serving a reranker, and routes to
// them as a node would: the chat model from both of its backends.
func apiBackends(t *testing.T) (modelsRouter, enginetest.Model) {
	t.Helper()
	base, m := llama(t)
	rt := enginetest.Runtime(t)
	serve := func(model enginetest.Model, embeddings bool) string {
		info, err := engine.DescribeModel(model.Path)
		if err != nil {
			t.Fatal(err)
		}
		spec := engine.ServerSpec{Model: model.Path, Alias: model.Alias, Parallel: 4}
		engine.PlanServing(info, embeddings).Apply(&spec)
		return enginetest.Server(t, rt, spec)
	}
	embed := serve(m, true)
	rerank := enginetest.RerankModel(t)
	return modelsRouter{
		models: []server.Model{
			{ID: m.Alias, Ready: true, State: "ready", Capabilities: []string{"completion", "embedding"},
				Details: &server.ModelDetails{Arch: "llama", Params: 292_800, Quant: "F32", Bytes: 1_171_200, Context: 2048}},
			{ID: rerank.Alias, Ready: true, State: "ready", Capabilities: []string{"rerank"}},
		},
		backends: map[string][]server.Backend{
			m.Alias:      {{Node: "chat/1", BaseURL: base}, {Node: "embed/2", BaseURL: embed}},
			rerank.Alias: {{Node: "rerank/3", BaseURL: serve(rerank, false)}},
		},
	}, m
}

// records collects what OnRequest is told.
type records struct {
	mu   sync.Mutex
	list []server.RequestRecord
}

func (r *records) add(rec server.RequestRecord) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.list = append(r.list, rec)
}

func (r *records) last() server.RequestRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.list) == 0 {
		return server.RequestRecord{}
	}
	return r.list[len(r.list)-1]
}

func decode(t *testing.T, resp *http.Response) map[string]any {
	t.Helper()
	defer resp.Body.Close()
	var v map[string]any
	body, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("%s: not JSON: %q", resp.Request.URL.Path, body)
	}
	return v
}

// sse reads a stream of server-sent events and returns the event names
// and data lines.
func sse(t *testing.T, resp *http.Response) (events, data []string) {
	t.Helper()
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if e, ok := strings.CutPrefix(sc.Text(), "event: "); ok {
			events = append(events, e)
		}
		if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			data = append(data, d)
		}
	}
	return events, data
}

// Every llama-server route that names a model goes through the routing:
// the answer names its node, requests are recorded with their tokens, and
// an endpoint only some backends serve is served by those.
func TestEveryAPIRoute(t *testing.T) {
	router, m := apiBackends(t)
	var recs records
	ts := newServer(t, server.Config{OnRequest: recs.add}, router)
	model := m.Alias

	resp := post(t, ts.URL+"/v1/responses", `{"model":"`+model+`","input":"Tell me a story","max_output_tokens":8,"temperature":0}`)
	node := resp.Header.Get("X-Potluck-Node")
	r := decode(t, resp)
	if resp.StatusCode != 200 || r["object"] != "response" || node == "" {
		t.Errorf("responses: %s from %q: %v", resp.Status, node, r)
	}
	if rec := recs.last(); rec.Node != node || rec.Tokens < 1 || rec.Tokens > 8 || rec.Model != model {
		t.Errorf("responses recorded as %+v", rec)
	}

	resp = post(t, ts.URL+"/v1/responses", `{"model":"`+model+`","input":"Tell me a story","max_output_tokens":6,"temperature":0,"stream":true}`)
	events, _ := sse(t, resp)
	if resp.StatusCode != 200 || len(events) < 4 || events[len(events)-1] != "response.incomplete" { // cut at max_output_tokens
		t.Errorf("responses stream: %s, events %v", resp.Status, events)
	}
	if rec := recs.last(); rec.Tokens < 1 || rec.Tokens > 6 {
		t.Errorf("responses stream recorded as %+v", rec)
	}

	resp = post(t, ts.URL+"/v1/messages", `{"model":"`+model+`","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}`,
		"anthropic-version", "2023-06-01")
	r = decode(t, resp)
	if resp.StatusCode != 200 || r["type"] != "message" || r["role"] != "assistant" {
		t.Errorf("messages: %s %v", resp.Status, r)
	}
	resp = post(t, ts.URL+"/v1/messages", `{"model":"`+model+`","max_tokens":5,"temperature":0,"stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	events, _ = sse(t, resp)
	if resp.StatusCode != 200 || len(events) < 3 || events[0] != "message_start" || events[len(events)-1] != "message_stop" {
		t.Errorf("messages stream: %s, events %v", resp.Status, events)
	}
	if rec := recs.last(); rec.Tokens < 1 || rec.Tokens > 5 {
		t.Errorf("messages stream recorded as %+v", rec)
	}
	resp = post(t, ts.URL+"/v1/messages/count_tokens", `{"model":"`+model+`","messages":[{"role":"user","content":"hi"}]}`)
	if r = decode(t, resp); resp.StatusCode != 200 || r["input_tokens"].(float64) < 1 {
		t.Errorf("count_tokens: %s %v", resp.Status, r)
	}

	// Embeddings only from the backend that has them on, whatever the
	// selector picks first.
	for i := 0; i < 6; i++ {
		resp = post(t, ts.URL+"/v1/embeddings", `{"model":"`+model+`","input":["a story","a cat"]}`)
		node := resp.Header.Get("X-Potluck-Node")
		r = decode(t, resp)
		if data, _ := r["data"].([]any); resp.StatusCode != 200 || node != "embed/2" || len(data) != 2 {
			t.Fatalf("embeddings: %s from %q: %v", resp.Status, node, r)
		}
	}
	for _, path := range []string{"/v1/rerank", "/v1/reranking"} {
		resp = post(t, ts.URL+path, `{"model":"tiny-rerank","query":"a story","documents":["a story","a cat","a dog"]}`)
		r = decode(t, resp)
		if results, _ := r["results"].([]any); resp.StatusCode != 200 || len(results) != 3 || resp.Header.Get("X-Potluck-Node") != "rerank/3" {
			t.Errorf("%s: %s %v", path, resp.Status, r)
		}
	}
	// No backend of the chat model reranks: a 501 that says what to do.
	resp = post(t, ts.URL+"/v1/rerank", `{"model":"`+model+`","query":"a","documents":["a"]}`)
	r = decode(t, resp)
	if e, _ := r["error"].(map[string]any); resp.StatusCode != 501 || !strings.Contains(e["message"].(string), "reranking model") {
		t.Errorf("rerank on a chat model: %s %v", resp.Status, r)
	}
}

// /v1/messages answers errors in Anthropic's shape, its own refusals and
// llama-server's alike, and takes the key in x-api-key.
func TestAnthropicErrors(t *testing.T) {
	router, m := apiBackends(t)
	ts := newServer(t, server.Config{Addr: "0.0.0.0:0", APIKey: "k3y"}, router)
	key := []string{"x-api-key", "k3y"}
	for _, tc := range []struct {
		name, body string
		hdr        []string
		status     int
		typ        string
	}{
		{"no key", `{"model":"` + m.Alias + `"}`, nil, 401, "authentication_error"},
		{"wrong key", `{"model":"` + m.Alias + `"}`, []string{"x-api-key", "nope"}, 401, "authentication_error"},
		{"unknown model", `{"model":"claude-9","max_tokens":4,"messages":[{"role":"user","content":"hi"}]}`, key, 404, "not_found_error"},
		{"not JSON", `{"model":`, key, 400, "invalid_request_error"},
		{"backend refuses", `{"model":"` + m.Alias + `","max_tokens":4}`, key, 0, ""},
	} {
		resp := post(t, ts.URL+"/v1/messages", tc.body, tc.hdr...)
		var e struct {
			Type  string `json:"type"`
			Error struct {
				Type    string `json:"type"`
				Message string `json:"message"`
			} `json:"error"`
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		err := json.Unmarshal(body, &e)
		if err != nil || e.Type != "error" || e.Error.Message == "" || (tc.status != 0 && (resp.StatusCode != tc.status || e.Error.Type != tc.typ)) ||
			resp.StatusCode < 400 {
			t.Errorf("%s: %s %s, want %d with an Anthropic %s", tc.name, resp.Status, body, tc.status, tc.typ)
		}
	}
	// The OpenAI routes keep OpenAI's shape, and take x-api-key too.
	resp := post(t, ts.URL+"/v1/chat/completions", `{"model":"`+m.Alias+`","max_tokens":2,"messages":[{"role":"user","content":"hi"}]}`, key...)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("chat with x-api-key: %s", resp.Status)
	}
	resp = post(t, ts.URL+"/v1/chat/completions", `{"model":"gpt-9","messages":[{"role":"user","content":"hi"}]}`, key...)
	if r := decode(t, resp); resp.StatusCode != 404 || r["error"].(map[string]any)["type"] != "invalid_request_error" {
		t.Errorf("unknown model on /v1/chat/completions: %s %v", resp.Status, r)
	}
}

// A taken Ollama port stops the server with an error that says what to do.
func TestOllamaPortTaken(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	s, err := server.New(server.Config{Addr: "127.0.0.1:0", OllamaAddr: l.Addr().String()}, staticRouter{model: "m"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = s.Run(t.Context())
	if err == nil || !strings.Contains(err.Error(), "Ollama itself may be running") || !strings.Contains(err.Error(), "--ollama-api") {
		t.Errorf("Run with the Ollama port taken: %v", err)
	}
	if _, err := server.New(server.Config{Addr: "127.0.0.1:0", OllamaAddr: "0.0.0.0:11434"}, staticRouter{}, nil, nil); err == nil ||
		!strings.Contains(err.Error(), "--api-key") {
		t.Errorf("an Ollama API beyond loopback without a key: %v", err)
	}
}

func newOllama(t *testing.T, cfg server.Config, r server.Router, node server.Node) *httptest.Server {
	t.Helper()
	cfg.Addr, cfg.OllamaAddr = "127.0.0.1:0", "127.0.0.1:0"
	s, err := server.New(cfg, r, node, nil)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.OllamaHandler())
	t.Cleanup(ts.Close)
	return ts
}

package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/hub"
	"github.com/potluck-gpu/potluck/library"
	"github.com/potluck-gpu/potluck/nodestate"
	"github.com/potluck-gpu/potluck/server"
)

// adminNode is a server.Node that counts the calls that would change it.
type adminNode struct{ changes atomic.Int32 }

func (n *adminNode) Status() nodestate.Status           { return nodestate.Status{Name: "test"} }
func (n *adminNode) Peers() []nodestate.Peer            { return nil }
func (n *adminNode) Plan(string) nodestate.PlanView     { return nodestate.PlanView{} }
func (n *adminNode) Members() nodestate.MembersView     { return nodestate.MembersView{} }
func (n *adminNode) InviteToken() (string, error)       { n.changes.Add(1); return "secret-token", nil }
func (n *adminNode) Counters() server.Counters          { return server.Counters{} }
func (n *adminNode) Quit()                              { n.changes.Add(1) }
func (n *adminNode) Join(context.Context, string) error { n.changes.Add(1); return nil }
func (n *adminNode) Leave(context.Context) error        { n.changes.Add(1); return nil }
func (n *adminNode) SetDevices(context.Context, []string) error {
	n.changes.Add(1)
	return nil
}
func (n *adminNode) SetLendTo(context.Context, []string) error {
	n.changes.Add(1)
	return nil
}
func (n *adminNode) Share(context.Context, string, string) error {
	n.changes.Add(1)
	return nil
}
func (n *adminNode) RemoveMember(context.Context, string) (nodestate.RemovalResult, error) {
	n.changes.Add(1)
	return nodestate.RemovalResult{}, nil
}
func (n *adminNode) Library() nodestate.LibraryView { return nodestate.LibraryView{} }
func (n *adminNode) Usage() nodestate.Usage         { return nodestate.Usage{} }
func (n *adminNode) Serve(context.Context, string, *bool) error {
	n.changes.Add(1)
	return nil
}
func (n *adminNode) SetDraft(context.Context, string) error {
	n.changes.Add(1)
	return nil
}
func (n *adminNode) Pull(context.Context, string, func(hub.Progress)) (library.Model, error) {
	n.changes.Add(1)
	return library.Model{}, nil
}
func (n *adminNode) DeleteModel(context.Context, string) (library.Model, error) {
	n.changes.Add(1)
	return library.Model{}, nil
}

type accessCase struct {
	name   string
	method string
	path   string
	host   string // default 127.0.0.1:8080
	remote string // default 127.0.0.1:40000
	hdr    map[string]string
	want   int
	ollama bool // to the Ollama-compatible listener
}

func runAccess(t *testing.T, cfg server.Config, cases []accessCase) {
	t.Helper()
	node := &adminNode{}
	s, err := server.New(cfg, staticRouter{model: "m"}, node, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		h := s.Handler()
		if c.ollama {
			h = s.OllamaHandler()
		}
		var body *strings.Reader
		if c.method == http.MethodPost || c.method == http.MethodDelete {
			body = strings.NewReader(`{"token":"x","mode":"off","peer":"p","model":"owner/repo"}`)
		} else {
			body = strings.NewReader("")
		}
		req := httptest.NewRequest(c.method, c.path, body)
		req.Host = "127.0.0.1:8080"
		if c.host != "" {
			req.Host = c.host
		}
		req.RemoteAddr = "127.0.0.1:40000"
		if c.remote != "" {
			req.RemoteAddr = c.remote
		}
		for k, v := range c.hdr {
			req.Header.Set(k, v)
		}
		before := node.changes.Load()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		changed := node.changes.Load() != before
		if rec.Code != c.want {
			t.Errorf("%s: %d %s, want %d", c.name, rec.Code, strings.TrimSpace(rec.Body.String()), c.want)
			continue
		}
		if rec.Code >= 400 {
			if shape := errorShape(c.path, c.ollama, rec.Body.Bytes()); shape != "" {
				t.Errorf("%s: the refusal is not %s: %s", c.name, shape, rec.Body.String())
			}
			if changed || strings.Contains(rec.Body.String(), "secret-token") {
				t.Errorf("%s: refused, yet the node was called", c.name)
			}
		}
		if strings.HasPrefix(c.path, "/api/") && !readOnly(c.method, c.path) && rec.Header().Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("%s: an admin endpoint answered with CORS headers", c.name)
		}
	}
}

// errorShape checks that body is an error in the shape of the API of path
// (on the Ollama listener when ollama), and otherwise names that shape.
func errorShape(path string, ollama bool, body []byte) string {
	switch {
	case ollama:
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(body, &e) != nil || e.Error == "" {
			return "an Ollama error"
		}
	case path == "/v1/messages" || strings.HasPrefix(path, "/v1/messages/"):
		var e struct {
			Type  string                         `json:"type"`
			Error struct{ Type, Message string } `json:"error"`
		}
		if json.Unmarshal(body, &e) != nil || e.Type != "error" || e.Error.Type == "" || e.Error.Message == "" {
			return "an Anthropic error"
		}
	default:
		var e struct {
			Error struct{ Message, Type string } `json:"error"`
		}
		if json.Unmarshal(body, &e) != nil || e.Error.Message == "" || e.Error.Type == "" {
			return "an OpenAI error"
		}
	}
	return ""
}

func readOnly(method, path string) bool {
	return method == http.MethodGet && (path == "/api/status" || path == "/api/peers" || path == "/api/members")
}

var jsonCT = map[string]string{"Content-Type": "application/json"}

func with(extra ...string) map[string]string {
	h := map[string]string{"Content-Type": "application/json"}
	for i := 0; i+1 < len(extra); i += 2 {
		if extra[i+1] == "" {
			delete(h, extra[i])
		} else {
			h[extra[i]] = extra[i+1]
		}
	}
	return h
}

// The API answers only to its own names: a DNS-rebinding page reaches
// 127.0.0.1 under a name of its own.
func TestHostMustNameTheAPI(t *testing.T) {
	runAccess(t, server.Config{Addr: "127.0.0.1:8080", AllowedHosts: []string{"potluck.lan"}}, []accessCase{
		{name: "127.0.0.1", method: "GET", path: "/api/status", want: 200},
		{name: "localhost", method: "GET", path: "/api/status", host: "localhost:8080", want: 200},
		{name: "a .localhost name", method: "GET", path: "/api/status", host: "app.localhost:8080", want: 200},
		{name: "::1", method: "GET", path: "/api/status", host: "[::1]:8080", want: 200},
		{name: "127.0.0.2", method: "GET", path: "/v1/models", host: "127.0.0.2", want: 200},
		{name: "--allow-host", method: "GET", path: "/api/status", host: "Potluck.LAN:8080", want: 200},
		{name: "rebinding name, status", method: "GET", path: "/api/status", host: "evil.test:8080", want: 403},
		{name: "rebinding name, chat", method: "GET", path: "/v1/models", host: "evil.test:8080", want: 403},
		{name: "rebinding name, token", method: "GET", path: "/api/token", host: "evil.test:8080", hdr: jsonCT, want: 403},
		{name: "rebinding name, join", method: "POST", path: "/api/join", host: "evil.test:8080", hdr: jsonCT, want: 403},
		{name: "a name ending in localhost", method: "GET", path: "/api/status", host: "evillocalhost:8080", want: 403},
		{name: "another address", method: "GET", path: "/api/status", host: "10.0.0.1:8080", want: 403},
		{name: "no host", method: "GET", path: "/api/status", host: " ", want: 403},
	})
	// Listening on every interface, any address names the API (an
	// address cannot be rebound), names still do not.
	runAccess(t, server.Config{Addr: "0.0.0.0:8080", APIKey: "k"}, []accessCase{
		{name: "LAN address", method: "GET", path: "/api/status", host: "192.168.1.5:8080", hdr: map[string]string{"Authorization": "Bearer k"}, want: 200},
		{name: "name", method: "GET", path: "/api/status", host: "evil.test:8080", hdr: map[string]string{"Authorization": "Bearer k"}, want: 403},
	})
	runAccess(t, server.Config{Addr: "gpu-box.lan:8080", APIKey: "k"}, []accessCase{
		{name: "the --api host", method: "GET", path: "/api/status", host: "GPU-BOX.lan:8080", hdr: map[string]string{"Authorization": "Bearer k"}, want: 200},
	})
}

// Admin endpoints take only JSON from no page, or from the API's own.
func TestAdminEndpointsRefuseWebPages(t *testing.T) {
	cases := []accessCase{
		{name: "join, JSON", method: "POST", path: "/api/join", hdr: jsonCT, want: 200},
		{name: "join, JSON with charset", method: "POST", path: "/api/join", hdr: with("Content-Type", "application/json; charset=utf-8"), want: 200},
		{name: "join, text/plain (no-cors fetch, beacon)", method: "POST", path: "/api/join", hdr: with("Content-Type", "text/plain;charset=UTF-8"), want: 415},
		{name: "join, form", method: "POST", path: "/api/join", hdr: with("Content-Type", "application/x-www-form-urlencoded"), want: 415},
		{name: "join, multipart", method: "POST", path: "/api/join", hdr: with("Content-Type", "multipart/form-data; boundary=x"), want: 415},
		{name: "join, no content type", method: "POST", path: "/api/join", want: 415},
		{name: "join from another origin", method: "POST", path: "/api/join", hdr: with("Origin", "http://127.0.0.1:3000"), want: 403},
		{name: "join from a null origin", method: "POST", path: "/api/join", hdr: with("Origin", "null"), want: 403},
		{name: "join from the API's own origin", method: "POST", path: "/api/join", hdr: with("Origin", "http://127.0.0.1:8080"), want: 200},
		{name: "join, cross-site fetch metadata", method: "POST", path: "/api/join", hdr: with("Sec-Fetch-Site", "cross-site"), want: 403},
		{name: "join, same-site fetch metadata", method: "POST", path: "/api/join", hdr: with("Sec-Fetch-Site", "same-site"), want: 403},
		{name: "join, same-origin fetch metadata", method: "POST", path: "/api/join", hdr: with("Sec-Fetch-Site", "same-origin"), want: 200},
		{name: "share, text/plain", method: "POST", path: "/api/share", hdr: with("Content-Type", "text/plain"), want: 415},
		{name: "leave, text/plain", method: "POST", path: "/api/leave", hdr: with("Content-Type", "text/plain"), want: 415},
		{name: "quit, text/plain", method: "POST", path: "/api/quit", hdr: with("Content-Type", "text/plain"), want: 415},
		{name: "quit from another origin", method: "POST", path: "/api/quit", hdr: with("Origin", "http://evil.test"), want: 403},
		{name: "quit, cross-site fetch metadata", method: "POST", path: "/api/quit", hdr: with("Sec-Fetch-Site", "cross-site"), want: 403},
		{name: "quit", method: "POST", path: "/api/quit", hdr: jsonCT, want: 202},
		{name: "devices, text/plain", method: "POST", path: "/api/devices", hdr: with("Content-Type", "text/plain"), want: 415},
		{name: "devices from another origin", method: "POST", path: "/api/devices", hdr: with("Origin", "http://evil.test"), want: 403},
		{name: "devices", method: "POST", path: "/api/devices", hdr: jsonCT, want: 200},
		{name: "lend from another origin", method: "POST", path: "/api/lend", hdr: with("Origin", "http://evil.test"), want: 403},
		{name: "lend", method: "POST", path: "/api/lend", hdr: jsonCT, want: 200},
		{name: "pull, text/plain", method: "POST", path: "/api/pull", hdr: with("Content-Type", "text/plain"), want: 415},
		{name: "pull from another origin", method: "POST", path: "/api/pull", hdr: with("Origin", "http://evil.test"), want: 403},
		{name: "pull from the node's own page", method: "POST", path: "/api/pull", hdr: with("Origin", "http://127.0.0.1:8080", "Sec-Fetch-Site", "same-origin"), want: 200},
		{name: "serve, text/plain", method: "POST", path: "/api/serve", hdr: with("Content-Type", "text/plain"), want: 415},
		{name: "serve from another origin", method: "POST", path: "/api/serve", hdr: with("Origin", "http://evil.test"), want: 403},
		{name: "draft from another origin", method: "POST", path: "/api/draft", hdr: with("Origin", "http://evil.test"), want: 403},
		{name: "delete a model", method: "POST", path: "/api/models/delete", hdr: jsonCT, want: 200},
		{name: "delete a model, text/plain", method: "POST", path: "/api/models/delete", hdr: with("Content-Type", "text/plain"), want: 415},
		{name: "delete a model from another origin", method: "POST", path: "/api/models/delete", hdr: with("Origin", "http://evil.test"), want: 403},
		{name: "delete a model, cross-site fetch metadata", method: "POST", path: "/api/models/delete", hdr: with("Sec-Fetch-Site", "cross-site"), want: 403},
		{name: "delete a model through a proxy", method: "POST", path: "/api/models/delete", hdr: with("X-Forwarded-For", "203.0.113.7"), want: 403},
		{name: "models list needs no JSON", method: "GET", path: "/api/models", want: 200},
		{name: "remove member, form", method: "POST", path: "/api/members/remove", hdr: with("Content-Type", "application/x-www-form-urlencoded"), want: 415},
		{name: "token without JSON", method: "GET", path: "/api/token", want: 415},
		{name: "token from another origin", method: "GET", path: "/api/token", hdr: with("Origin", "http://evil.test"), want: 403},
		{name: "token", method: "GET", path: "/api/token", hdr: jsonCT, want: 200},
		{name: "preflight for join", method: "OPTIONS", path: "/api/join", hdr: map[string]string{"Origin": "http://app.example", "Access-Control-Request-Method": "POST"}, want: 403},
		{name: "an endpoint nobody made read-only", method: "POST", path: "/api/status", hdr: with("Content-Type", "text/plain"), want: 415},
		{name: "status needs no JSON", method: "GET", path: "/api/status", want: 200},
		{name: "members list needs no JSON", method: "GET", path: "/api/members", want: 200},
		{name: "plan of the served model", method: "GET", path: "/api/plan", want: 200},
		{name: "plan of a file the caller names", method: "GET", path: "/api/plan?model=/etc/shadow", want: 415},
		{name: "plan of a file, JSON", method: "GET", path: "/api/plan?model=/nonexistent", hdr: jsonCT, want: 200},
		{name: "another site's no-cors chat", method: "POST", path: "/v1/completions", hdr: with("Content-Type", "text/plain", "Sec-Fetch-Site", "cross-site", "Sec-Fetch-Mode", "no-cors"), want: 403},
		{name: "another site's status read", method: "GET", path: "/api/status", hdr: map[string]string{"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "cors", "Origin": "http://evil.test"}, want: 403},
		{name: "a link from another site", method: "GET", path: "/api/status", hdr: map[string]string{"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"}, want: 200},
		{name: "typed in the address bar", method: "GET", path: "/api/status", hdr: map[string]string{"Sec-Fetch-Site": "none", "Sec-Fetch-Mode": "navigate"}, want: 200},
	}
	runAccess(t, server.Config{Addr: "127.0.0.1:8080"}, cases)
	// A --cors-origin page may chat and read status, never administer.
	runAccess(t, server.Config{Addr: "127.0.0.1:8080", CORSOrigin: "http://app.example"}, []accessCase{
		{name: "cors page joins", method: "POST", path: "/api/join", hdr: with("Origin", "http://app.example"), want: 403},
		{name: "cors page pulls a model", method: "POST", path: "/api/pull", hdr: with("Origin", "http://app.example"), want: 403},
		{name: "cors page deletes a model", method: "POST", path: "/api/models/delete", hdr: with("Origin", "http://app.example"), want: 403},
		{name: "cors page preflights a delete", method: "OPTIONS", path: "/api/models/delete", hdr: map[string]string{"Origin": "http://app.example", "Access-Control-Request-Method": "POST"}, want: 403},
		{name: "cors page reads the token", method: "GET", path: "/api/token", hdr: with("Origin", "http://app.example"), want: 403},
		{name: "cors page preflights join", method: "OPTIONS", path: "/api/join", hdr: map[string]string{"Origin": "http://app.example", "Access-Control-Request-Method": "POST"}, want: 403},
		{name: "cors page reads status", method: "GET", path: "/api/status", hdr: map[string]string{"Origin": "http://app.example", "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "cors"}, want: 200},
		{name: "another page reads status", method: "GET", path: "/api/status", hdr: map[string]string{"Origin": "http://evil.test", "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "cors"}, want: 403},
		{name: "cors page preflights chat", method: "OPTIONS", path: "/v1/chat/completions", hdr: map[string]string{"Origin": "http://app.example", "Access-Control-Request-Method": "POST"}, want: 204},
	})
}

// Off loopback the API key opens /v1 and status; only the admin key (or a
// client on this machine) opens the admin endpoints.
func TestAdminKeyIsNotTheAPIKey(t *testing.T) {
	const remote = "192.168.1.9:50000"
	bearer := func(k string) map[string]string { return with("Authorization", "Bearer "+k) }
	runAccess(t, server.Config{Addr: "0.0.0.0:8080", APIKey: "chat-key", AdminKey: "admin-key"}, []accessCase{
		{name: "remote chat without a key", method: "GET", path: "/v1/models", remote: remote, want: 401},
		{name: "remote chat, API key", method: "GET", path: "/v1/models", remote: remote, hdr: bearer("chat-key"), want: 200},
		{name: "remote chat, admin key", method: "GET", path: "/v1/models", remote: remote, hdr: bearer("admin-key"), want: 200},
		{name: "remote status, API key", method: "GET", path: "/api/status", remote: remote, hdr: bearer("chat-key"), want: 200},
		{name: "remote metrics without a key", method: "GET", path: "/metrics", remote: remote, want: 401},
		{name: "remote join, no key", method: "POST", path: "/api/join", remote: remote, hdr: jsonCT, want: 403},
		{name: "remote join, API key", method: "POST", path: "/api/join", remote: remote, hdr: bearer("chat-key"), want: 403},
		{name: "remote token, API key", method: "GET", path: "/api/token", remote: remote, hdr: bearer("chat-key"), want: 403},
		{name: "remote join, wrong admin key", method: "POST", path: "/api/join", remote: remote, hdr: bearer("admin-keyX"), want: 403},
		{name: "remote join, admin key", method: "POST", path: "/api/join", remote: remote, hdr: bearer("admin-key"), want: 200},
		{name: "local join, no key", method: "POST", path: "/api/join", hdr: jsonCT, want: 200},
		{name: "local join through a proxy", method: "POST", path: "/api/join", hdr: with("X-Forwarded-For", "203.0.113.7"), want: 403},
		{name: "local chat still needs the API key", method: "GET", path: "/v1/models", want: 401},
	})
	if _, err := server.New(server.Config{Addr: "0.0.0.0:8080", APIKey: "same", AdminKey: "same"}, staticRouter{}, nil, nil); err == nil {
		t.Error("an admin key equal to the API key was accepted")
	}
	if _, err := server.New(server.Config{Addr: "0.0.0.0:8080", AdminKey: "admin"}, staticRouter{}, nil, nil); err == nil {
		t.Error("an API beyond loopback without an API key was accepted")
	}
}

// Past MaxConcurrent requests in flight, a request gets a 503 at once.
func TestConcurrencyCap(t *testing.T) {
	release := make(chan struct{})
	var entered sync.WaitGroup
	entered.Add(2)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered.Done()
		<-release
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"choices":[]}`))
	}))
	defer backend.Close()
	defer close(release)
	ts := newServer(t, server.Config{MaxConcurrent: 2},
		staticRouter{model: "m", backends: []server.Backend{{Node: "b", BaseURL: backend.URL}}})
	for range 2 {
		go func() {
			resp, err := http.Post(ts.URL+"/v1/completions", "application/json", strings.NewReader(`{"prompt":"x"}`))
			if err == nil {
				resp.Body.Close()
			}
		}()
	}
	done := make(chan struct{})
	go func() { entered.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the first two requests did not reach the backend")
	}
	resp := post(t, ts.URL+"/v1/completions", `{"prompt":"x"}`)
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("third request: %s, Retry-After %q; want 503 with Retry-After", resp.Status, resp.Header.Get("Retry-After"))
	}
}

// The Ollama-compatible listener follows the main API's rules: its own
// names only, no other site's pages, the API key off loopback, and pulling
// (which changes the node) as an admin endpoint. The new routes of the
// main API refuse in their API's shape.
func TestOllamaListenerAccess(t *testing.T) {
	const remote = "192.168.1.9:50000"
	o := func(c accessCase) accessCase {
		c.ollama = true
		if c.host == "" {
			c.host = "127.0.0.1:11434"
		}
		return c
	}
	runAccess(t, server.Config{Addr: "127.0.0.1:8080", OllamaAddr: "127.0.0.1:11434"}, []accessCase{
		o(accessCase{name: "tags", method: "GET", path: "/api/tags", want: 200}),
		o(accessCase{name: "tags by localhost", method: "GET", path: "/api/tags", host: "localhost:11434", want: 200}),
		o(accessCase{name: "tags by a rebinding name", method: "GET", path: "/api/tags", host: "evil.test:11434", want: 403}),
		o(accessCase{name: "another site's no-cors chat", method: "POST", path: "/api/chat", hdr: with("Content-Type", "text/plain", "Sec-Fetch-Site", "cross-site", "Sec-Fetch-Mode", "no-cors"), want: 403}),
		o(accessCase{name: "another site reads the version", method: "GET", path: "/api/version", hdr: map[string]string{"Origin": "http://evil.test", "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "cors"}, want: 403}),
		o(accessCase{name: "pull", method: "POST", path: "/api/pull", hdr: jsonCT, want: 200}),
		o(accessCase{name: "pull, text/plain", method: "POST", path: "/api/pull", hdr: with("Content-Type", "text/plain"), want: 415}),
		o(accessCase{name: "pull from another origin", method: "POST", path: "/api/pull", hdr: with("Origin", "http://evil.test"), want: 403}),
		o(accessCase{name: "pull through a proxy", method: "POST", path: "/api/pull", hdr: with("X-Forwarded-For", "203.0.113.7"), want: 403}),
		o(accessCase{name: "delete", method: "DELETE", path: "/api/delete", hdr: jsonCT, want: 200}),
		o(accessCase{name: "delete, text/plain", method: "DELETE", path: "/api/delete", hdr: with("Content-Type", "text/plain"), want: 415}),
		o(accessCase{name: "delete from another origin", method: "DELETE", path: "/api/delete", hdr: with("Origin", "http://evil.test"), want: 403}),
		o(accessCase{name: "delete, cross-site fetch metadata", method: "DELETE", path: "/api/delete", hdr: with("Sec-Fetch-Site", "cross-site"), want: 403}),
		o(accessCase{name: "delete through a proxy", method: "DELETE", path: "/api/delete", hdr: with("X-Forwarded-For", "203.0.113.7"), want: 403}),
		o(accessCase{name: "preflight for delete", method: "OPTIONS", path: "/api/delete", hdr: map[string]string{"Origin": "http://evil.test", "Access-Control-Request-Method": "DELETE"}, want: 403}),
		o(accessCase{name: "the node API is not here", method: "POST", path: "/api/join", hdr: jsonCT, want: 404}),
		{name: "messages by a rebinding name", method: "POST", path: "/v1/messages", host: "evil.test:8080", hdr: jsonCT, want: 403},
		{name: "another site's responses", method: "POST", path: "/v1/responses", hdr: with("Sec-Fetch-Site", "cross-site", "Sec-Fetch-Mode", "no-cors"), want: 403},
	})
	runAccess(t, server.Config{Addr: "127.0.0.1:8080", OllamaAddr: "gpu-box.lan:11434", APIKey: "k"}, []accessCase{
		o(accessCase{name: "the --ollama-api host", method: "GET", path: "/api/tags", host: "gpu-box.lan:11434", hdr: map[string]string{"Authorization": "Bearer k"}, want: 200}),
		{name: "the --ollama-api host on the main API", method: "GET", path: "/v1/models", host: "gpu-box.lan:8080", hdr: map[string]string{"Authorization": "Bearer k"}, want: 403},
	})
	// The page --cors-origin lets in may chat, never delete.
	runAccess(t, server.Config{Addr: "127.0.0.1:8080", OllamaAddr: "127.0.0.1:11434", CORSOrigin: "http://app.example"}, []accessCase{
		o(accessCase{name: "cors page deletes a model", method: "DELETE", path: "/api/delete", hdr: with("Origin", "http://app.example"), want: 403}),
		o(accessCase{name: "cors page deletes, fetch metadata", method: "DELETE", path: "/api/delete", hdr: with("Origin", "http://app.example", "Sec-Fetch-Site", "cross-site", "Sec-Fetch-Mode", "cors"), want: 403}),
		o(accessCase{name: "cors page preflights a delete", method: "OPTIONS", path: "/api/delete", hdr: map[string]string{"Origin": "http://app.example", "Access-Control-Request-Method": "DELETE"}, want: 403}),
	})
	bearer := func(k string) map[string]string { return with("Authorization", "Bearer "+k) }
	runAccess(t, server.Config{Addr: "0.0.0.0:8080", OllamaAddr: "0.0.0.0:11434", APIKey: "chat-key", AdminKey: "admin-key"}, []accessCase{
		o(accessCase{name: "remote tags without a key", method: "GET", path: "/api/tags", remote: remote, want: 401}),
		o(accessCase{name: "remote tags, API key", method: "GET", path: "/api/tags", remote: remote, hdr: bearer("chat-key"), want: 200}),
		o(accessCase{name: "remote tags, x-api-key", method: "GET", path: "/api/tags", remote: remote, hdr: with("X-Api-Key", "chat-key"), want: 200}),
		o(accessCase{name: "remote pull, API key", method: "POST", path: "/api/pull", remote: remote, hdr: bearer("chat-key"), want: 403}),
		o(accessCase{name: "remote pull, admin key", method: "POST", path: "/api/pull", remote: remote, hdr: bearer("admin-key"), want: 200}),
		o(accessCase{name: "remote delete, API key", method: "DELETE", path: "/api/delete", remote: remote, hdr: bearer("chat-key"), want: 403}),
		o(accessCase{name: "remote delete, admin key", method: "DELETE", path: "/api/delete", remote: remote, hdr: bearer("admin-key"), want: 200}),
		{name: "remote messages without a key", method: "POST", path: "/v1/messages", remote: remote, hdr: jsonCT, want: 401},
		{name: "remote messages, wrong x-api-key", method: "POST", path: "/v1/messages", remote: remote, hdr: with("X-Api-Key", "nope"), want: 401},
		{name: "remote messages, x-api-key", method: "POST", path: "/v1/messages", remote: remote, hdr: with("X-Api-Key", "chat-key"), want: 400}, // past the key: the body is no Messages request
		{name: "remote admin, admin key in x-api-key", method: "POST", path: "/api/join", remote: remote, hdr: with("X-Api-Key", "admin-key"), want: 200},
	})
}

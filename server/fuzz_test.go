package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/potluck-gpu/potluck/hub"
	"github.com/potluck-gpu/potluck/library"
	"github.com/potluck-gpu/potluck/nodestate"
	"github.com/potluck-gpu/potluck/server"
)

// fuzzPaths are the endpoints that take a JSON body.
var fuzzPaths = []string{
	"/api/join", "/api/share", "/api/leave", "/api/members/remove", "/api/devices", "/api/lend", "/api/pull", "/api/serve",
	"/api/draft", "/api/models/delete",
	"/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses",
	"/v1/messages", "/v1/messages/count_tokens", "/v1/rerank", "/v1/reranking",
}

// ollamaFuzzPaths are the Ollama-compatible API's endpoints that take a
// JSON body.
var ollamaFuzzPaths = []string{
	"/api/chat", "/api/generate", "/api/embed", "/api/embeddings", "/api/show", "/api/pull",
}

// FuzzAPIBodies posts arbitrary bodies to every endpoint that reads one, as a
// client on this machine would, the Ollama-compatible API's included.
// Whatever the body, the answer is JSON, never a recovered panic, and every
// refusal is an error in the shape of the endpoint's API. A body the server
// cannot read never reaches the node. The only backend is a closed port, so
// the OpenAI endpoints answer quickly, with an error.
func FuzzAPIBodies(f *testing.F) {
	for _, seed := range []string{
		// What each endpoint expects.
		`{"token":"potluck1.abc"}`,
		`{"mode":"worker","memory":"12GiB"}`,
		`{"mode":"server","memory":12884901888}`,
		`{"mode":"off","memory":null}`,
		`{"peer":"alice"}`,
		`{"model":"tiny","messages":[{"role":"user","content":"hi"}],"max_tokens":4,"stream":true}`,
		`{"prompt":"Once upon a time","max_tokens":16,"temperature":0}`,
		`{"model":"tiny","input":["a","b"]}`,
		`{"model":"tiny","input":"Tell me a story","max_output_tokens":8,"stream":true}`,
		`{"model":"tiny","max_tokens":8,"messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}]}`,
		`{"model":"tiny","query":"a","documents":["a","b"]}`,
		`{"model":"tiny:latest","messages":[{"role":"user","content":"hi","images":["aGk="]}],"options":{"num_predict":4,"temperature":0},"format":"json","think":false}`,
		`{"model":"tiny","messages":[{"role":"assistant","tool_calls":[{"function":{"name":"f","arguments":{"a":1}}}]},{"role":"tool","content":"1"}],"tools":[{"type":"function","function":{"name":"f"}}]}`,
		`{"model":"tiny","prompt":"Once","raw":true,"stream":false,"options":{"num_predict":"x"}}`,
		`{"model":"tiny","prompt":"def f(","suffix":"return 1","format":{"type":"object"}}`,
		`{"model":"tiny","prompt":""}`,
		`{"options":{"stop":null,"seed":[1]},"format":7,"think":"high","messages":[{"role":"user","images":["%%%"]}]}`,
		`{}`,
		``,
		// Truncated, nested, huge, of the wrong type.
		`{"messages":[`,
		`{"token":"abc`,
		strings.Repeat(`[`, 20000),
		strings.Repeat(`{"a":`, 5000) + `1` + strings.Repeat(`}`, 5000),
		`{"max_tokens":1e400}`,
		`{"max_tokens":99999999999999999999999}`,
		`{"max_tokens":-1}`,
		`{"max_tokens":1.5}`,
		`{"memory":{}}`,
		`{"memory":[1,2]}`,
		`{"memory":true}`,
		`{"memory":-1}`,
		`{"token":5}`,
		`{"peer":["x"]}`,
		`{"stream":"yes"}`,
		`{"model":{"id":1}}`,
		`{"model":"gpt-9"}`,
		`[1,2,3]`,
		`null`,
		`"just a string"`,
		`{"token":"a"} {"token":"b"}`,
		`{"token":"a"}garbage`,
		// Bytes JSON has no place for.
		"{\"token\":\"a\x00b\"}",
		"\x00\x00\x00",
		"{\"peer\":\"\xff\xfe\"}",
		"{\"model\":\"\xc3\x28\"}",
		"\xef\xbb\xbf{}", // a byte-order mark
		`{"token":"\ud800"}`,
		strings.Repeat("a", 5000),
	} {
		f.Add([]byte(seed))
	}

	node := &recordingNode{}
	s, err := server.New(server.Config{Addr: "127.0.0.1:0", OllamaAddr: "127.0.0.1:0", MaxBody: 4 << 10},
		staticRouter{model: "tiny", backends: []server.Backend{{Node: "dead/1", BaseURL: closedPort(f)}}},
		node, nil)
	if err != nil {
		f.Fatal(err)
	}
	h, oh := s.Handler(), s.OllamaHandler()

	f.Fuzz(func(t *testing.T, body []byte) {
		for i, path := range append(fuzzPaths, ollamaFuzzPaths...) {
			ollama := i >= len(fuzzPaths)
			node.reset()
			req := httptest.NewRequest(http.MethodPost, "http://127.0.0.1"+path, bytes.NewReader(body))
			req.Host = "127.0.0.1"
			req.RemoteAddr = "127.0.0.1:50000"
			req.Header.Set("Content-Type", "application/json")
			rec := httptest.NewRecorder()
			if ollama {
				oh.ServeHTTP(rec, req)
			} else {
				h.ServeHTTP(rec, req)
			}
			checkAnswer(t, path, ollama, rec, node.called())
			// /api/leave takes no body; the others act on what theirs says.
			if node.called() && path != "/api/leave" && !json.Valid(body) {
				t.Errorf("%s: the node was driven by a body that is not JSON (%d %q)", path, rec.Code, rec.Body.Bytes())
			}
		}
	})
}

// closedPort returns a URL where nothing listens: a dial is refused at once.
func closedPort(tb testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return "http://" + l.Addr().String()
}

// checkAnswer fails unless rec is a well-formed answer to a POST to path
// (on the Ollama listener when ollama), given whether the node was called.
func checkAnswer(t *testing.T, path string, ollama bool, rec *httptest.ResponseRecorder, nodeCalled bool) {
	t.Helper()
	got := rec.Body.Bytes()
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") &&
		!(ollama && path == "/api/pull" && ct == "application/x-ndjson") {
		t.Errorf("%s: %d with Content-Type %q: %q", path, rec.Code, ct, got)
	}
	if !json.Valid(got) && !(ollama && path == "/api/pull") {
		t.Fatalf("%s: %d with a body that is not JSON: %q", path, rec.Code, got)
	}
	if rec.Code >= 200 && rec.Code < 300 {
		// With no live backend, only what needs none succeeds.
		if strings.HasPrefix(path, "/v1/") || path == "/api/embed" || path == "/api/embeddings" ||
			((path == "/api/generate" || path == "/api/chat") && !bytes.Contains(got, []byte(`"done_reason":"load"`))) {
			t.Errorf("%s: %d with no live backend: %q", path, rec.Code, got)
		}
		return
	}
	if shape := errorShape(path, ollama, got); shape != "" {
		t.Fatalf("%s: %d that is not %s: %q", path, rec.Code, shape, got)
	}
	for _, g := range []string{"Go struct", "Go value", "json: cannot", "map[string]"} {
		if bytes.Contains(got, []byte(g)) {
			t.Errorf("%s: %d shows Go's %q: %q", path, rec.Code, g, got)
		}
	}
	if rec.Code == http.StatusInternalServerError && bytes.Contains(got, []byte(`"internal error"`)) {
		t.Fatalf("%s: the handler panicked: %q", path, got)
	}
	if nodeCalled && bytes.Contains(got, []byte("request body is not valid JSON")) {
		t.Errorf("%s: the node was driven by a body the server refused: %q", path, got)
	}
}

// recordingNode is a server.Node that remembers whether the API called it.
// It refuses, as invalid input, what the real node would refuse.
type recordingNode struct {
	mu    sync.Mutex
	calls int
}

var _ server.Node = (*recordingNode)(nil)

// badInput is an error the server must answer with a 400.
type badInput string

func (e badInput) Error() string      { return string(e) }
func (e badInput) InvalidInput() bool { return true }

func (n *recordingNode) reset() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.calls = 0
}

func (n *recordingNode) called() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.calls > 0
}

func (n *recordingNode) call() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.calls++
}

func (n *recordingNode) Status() nodestate.Status {
	return nodestate.Status{State: nodestate.StateIdle}
}
func (n *recordingNode) Peers() []nodestate.Peer { return nil }
func (n *recordingNode) Plan(model string) nodestate.PlanView {
	return nodestate.PlanView{Model: model}
}
func (n *recordingNode) Members() nodestate.MembersView { return nodestate.MembersView{} }
func (n *recordingNode) Library() nodestate.LibraryView { return nodestate.LibraryView{} }
func (n *recordingNode) Usage() nodestate.Usage         { return nodestate.Usage{} }

func (n *recordingNode) Serve(ctx context.Context, model string, embeddings *bool) error {
	n.call()
	if strings.ContainsAny(model, " \n") {
		return badInput("not a model name")
	}
	return nil
}
func (n *recordingNode) InviteToken() (string, error) {
	return "", errors.New("not in a network")
}
func (n *recordingNode) Counters() server.Counters { return server.Counters{} }
func (n *recordingNode) Quit()                     {}

func (n *recordingNode) Join(ctx context.Context, token string) error {
	n.call()
	if !strings.HasPrefix(token, "potluck1.") {
		return badInput("not an invite token")
	}
	return nil
}

func (n *recordingNode) SetLendTo(ctx context.Context, who []string) error {
	n.call()
	for _, w := range who {
		if w == "" || strings.Contains(w, ",") {
			return badInput("not a member")
		}
	}
	return nil
}

func (n *recordingNode) SetDevices(ctx context.Context, devices []string) error {
	n.call()
	for _, d := range devices {
		if d == "" || strings.ContainsAny(d, " ,") {
			return badInput("not a device name")
		}
	}
	return nil
}

func (n *recordingNode) Leave(ctx context.Context) error {
	n.call()
	return nil
}

func (n *recordingNode) Share(ctx context.Context, mode, memory string) error {
	n.call()
	switch mode {
	case "off", "worker", "server":
	default:
		return badInput(`mode: want "off", "worker" or "server"`)
	}
	return nil
}

func (n *recordingNode) Pull(ctx context.Context, ref string, progress func(hub.Progress)) (library.Model, error) {
	n.call()
	if !strings.Contains(ref, "/") {
		return library.Model{}, badInput("not a reference")
	}
	if progress != nil {
		progress(hub.Progress{Status: "success"})
	}
	return library.Model{Name: ref}, nil
}

func (n *recordingNode) SetDraft(ctx context.Context, choice string) error {
	n.call()
	if choice == "" {
		return badInput("say auto, none or a model")
	}
	return nil
}

func (n *recordingNode) DeleteModel(ctx context.Context, name string) (library.Model, error) {
	n.call()
	if name != "owner/repo/model" {
		return library.Model{}, &library.NoModelError{Name: name}
	}
	return library.Model{Name: name}, nil
}

func (n *recordingNode) RemoveMember(ctx context.Context, who string) (nodestate.RemovalResult, error) {
	n.call()
	if who != "alice" {
		return nodestate.RemovalResult{}, errors.New("no member " + who) // a plain failure: a 500
	}
	return nodestate.RemovalResult{}, nil
}

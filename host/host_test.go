package host

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/engine"
	"github.com/potluck-gpu/potluck/engine/enginetest"
	"github.com/potluck-gpu/potluck/hub"
	"github.com/potluck-gpu/potluck/ledger"
	"github.com/potluck-gpu/potluck/library"
	"github.com/potluck-gpu/potluck/netmesh"
	"github.com/potluck-gpu/potluck/nodestate"
	"github.com/potluck-gpu/potluck/speculate"
)

// fakeMesh is a network of made-up members: the host's view of the mesh
// is all a test needs to steer it, and no tunnel opens.
type fakeMesh struct {
	mu     sync.Mutex
	self   string
	peers  []nodestate.Peer
	asker  string // whom every proxy connection comes from; "": this node
	dialed []string
}

func (m *fakeMesh) Self() string { return m.self }

func (m *fakeMesh) Peers() []nodestate.Peer {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.peers)
}

func (m *fakeMesh) PeerOfConn(string) (string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.asker, m.asker != ""
}

func (m *fakeMesh) Tunnel(_ context.Context, id, _ string) (string, error) {
	m.mu.Lock()
	m.dialed = append(m.dialed, id)
	m.mu.Unlock()
	return "", errors.New("no tunnels in this test")
}

func (m *fakeMesh) CloseTunnels(string)                {}
func (m *fakeMesh) TunnelSent([]string, string) uint64 { return 0 }

// fakeNode is the node around the host: the real llama.cpp, the CPU as
// the head's one device, and what the host tells it kept for the test.
type fakeNode struct {
	rt    engine.Runtime
	pull  func(ref string) (library.Model, error)
	limit uint64
	// models are the library's, candidate drafts.
	models []speculate.Model
	// devices are the head's; nil: its CPU, lending 64 MiB.
	devices []nodestate.DeviceInfo

	mu       sync.Mutex
	warnings map[string]nodestate.Warning
	ready    chan string
}

func newFakeNode(t *testing.T) *fakeNode {
	return &fakeNode{rt: enginetest.Runtime(t), warnings: map[string]nodestate.Warning{}, ready: make(chan string, 4)}
}

func (f *fakeNode) Runtime() (engine.Runtime, engine.Versions, error) {
	return f.rt, engine.Versions{RPCProtocol: "3.0.0"}, nil
}

func (f *fakeNode) Devices() ([]nodestate.DeviceInfo, []string) {
	if f.devices != nil {
		return f.devices, nil
	}
	return []nodestate.DeviceInfo{{Name: "CPU", Backend: "CPU", Offer: 64 << 20, Speed: engine.CPUSpeed(0)}}, nil
}

func (f *fakeNode) Pull(_ context.Context, ref string, _ func(hub.Progress)) (library.Model, error) {
	if f.pull == nil {
		return library.Model{}, &library.NotFoundError{Name: ref}
	}
	return f.pull(ref)
}

func (f *fakeNode) ModelFiles(context.Context, string) ([]string, uint64) {
	return []string{"0123abcd"}, 1 << 20
}

func (f *fakeNode) Embeddings(string, string) bool { return false }
func (f *fakeNode) Models() []speculate.Model      { return f.models }
func (f *fakeNode) ShareLimit() uint64             { f.mu.Lock(); defer f.mu.Unlock(); return f.limit }
func (f *fakeNode) Changed()                       {}
func (f *fakeNode) Announce()                      {}
func (f *fakeNode) Ready(alias string)             { f.ready <- alias }

func (f *fakeNode) Warn(w nodestate.Warning) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.warnings[w.Code] = w
}

func (f *fakeNode) ClearWarning(code string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.warnings, code)
}

func (f *fakeNode) warning(code string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.warnings[code].Message
}

// A host serves its model with the real llama-server behind its proxy:
// the proxy records each request from a member in the accounts, answers
// 429 in OpenAI's shape once that member has had its daily share, says
// what the model is on ModelInfoPath, and Stop ends llama-server.
func TestHostServesThroughItsProxy(t *testing.T) {
	m := enginetest.TestModel(t)
	led, err := ledger.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	mesh := &fakeMesh{self: "head-id", peers: []nodestate.Peer{{ID: "friend-id", Name: "alice", Online: true, Mode: nodestate.ShareOff}}}
	node := newFakeNode(t)
	h := New(Config{Name: "head", CtxSize: 256, Threads: 1, Ledger: led}, mesh, node, m.Alias)
	h.SetModel(m.Path, m.Alias)
	h.Start(t.Context())
	defer h.Stop()
	select {
	case alias := <-node.ready:
		if alias != m.Alias {
			t.Errorf("ready %q, want %q", alias, m.Alias)
		}
	case <-time.After(90 * time.Second):
		t.Fatalf("the model did not get ready: %+v", h.Status())
	}
	st := h.Status()
	if !st.Ready || st.ID != m.Alias || len(st.Holders) != 1 || !st.Holders[0].Local {
		t.Errorf("status %+v", st)
	}
	addr := h.LocalAddr()
	if addr == "" {
		t.Fatal("no address while ready")
	}

	complete := func() (*http.Response, string) {
		t.Helper()
		resp, err := http.Post("http://"+addr+"/v1/completions", "application/json",
			strings.NewReader(`{"prompt":"","max_tokens":8,"temperature":0}`))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	// This node's own request: served, never limited, not a member's.
	resp, body := complete()
	if resp.StatusCode != http.StatusOK || (m.Stories && !strings.Contains(body, "Once upon")) {
		t.Fatalf("own request: %s %s", resp.Status, body)
	}
	// A member's: served and recorded, the tokens all this node's.
	mesh.mu.Lock()
	mesh.asker = "friend-id"
	mesh.mu.Unlock()
	if resp, body := complete(); resp.StatusCode != http.StatusOK {
		t.Fatalf("member's request: %s %s", resp.Status, body)
	}
	// The proxy records once the answer is through: soon after the
	// client has it.
	var served float64
	for deadline := time.Now().Add(5 * time.Second); served < 8 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
		served = led.ServedToday("head-id", "friend-id")
	}
	if served < 8 {
		t.Errorf("the accounts hold %.0f tokens served to the member, want at least 8", served)
	}

	// Over its daily share: a 429 that says who and when, in OpenAI's
	// shape, and llama-server is not asked.
	node.mu.Lock()
	node.limit = uint64(served)
	node.mu.Unlock()
	resp, body = complete()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("over the share: %s %s", resp.Status, body)
	}
	var e struct {
		Error struct {
			Message, Type string
			Code          any
		}
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error.Type != "rate_limit_error" || e.Error.Code != "share_limit" ||
		!strings.Contains(e.Error.Message, "alice has used its daily share of head's model") {
		t.Errorf("429 body %s (%v)", body, err)
	}
	if got := led.ServedToday("head-id", "friend-id"); got != served {
		t.Errorf("a refused request was served: %.0f tokens, was %.0f", got, served)
	}

	var info struct {
		ID      string `json:"id"`
		Details struct {
			Digest string `json:"digest"`
		} `json:"details"`
	}
	resp, err = http.Get("http://" + addr + ModelInfoPath)
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&info)
	resp.Body.Close()
	if info.ID != m.Alias || info.Details.Digest != "0123abcd" {
		t.Errorf("model info %+v", info)
	}

	h.mu.Lock()
	port := strconv.Itoa(h.port)
	h.mu.Unlock()
	h.Stop()
	if h.LocalAddr() != "" {
		t.Error("an address after Stop")
	}
	if c, err := net.DialTimeout("tcp", "127.0.0.1:"+port, time.Second); err == nil {
		c.Close()
		t.Errorf("llama-server still answers on %s after Stop", port)
	}
}

// The plan takes the online workers that lend to this node over a direct
// connection, and says why it leaves each other one out.
func TestHostPlansOverTheMesh(t *testing.T) {
	m := enginetest.TestModel(t)
	worker := func(id, name string) nodestate.Peer {
		return nodestate.Peer{ID: id, Name: name, Online: true, Mode: nodestate.ShareWorker, Conn: "direct", MinRTTMS: 1,
			Services: map[string]netmesh.ServiceInfo{DefaultRPCService: {Version: "3.0.0"}},
			Devices:  []nodestate.DeviceInfo{{Name: "CPU", Backend: "CPU", Offer: 1 << 30, Speed: engine.CPUSpeed(0)}}}
	}
	relayed := worker("relayed-id", "far")
	relayed.Conn = "relayed"
	picky := worker("picky-id", "picky")
	picky.LendTo = []string{"someone-else"}
	offline := worker("offline-id", "asleep")
	offline.Online = false
	server := worker("server-id", "server")
	server.Mode = nodestate.ShareServer
	mesh := &fakeMesh{self: "head-id", peers: []nodestate.Peer{worker("near-id", "near"), relayed, picky, offline, server}}
	h := New(Config{Name: "head", CtxSize: 256, Split: engine.SplitAll}, mesh, newFakeNode(t), m.Alias)
	h.SetModel(m.Path, m.Alias)
	plan, err := h.Plan()
	if err != nil {
		t.Fatal(err)
	}
	if !plan.Fits || !slices.Equal(plan.Workers, []string{"near-id"}) {
		t.Errorf("plan: fits %v, workers %v (%s), excluded %+v", plan.Fits, plan.Workers, plan.Reason, plan.Excluded)
	}
	why := map[string]string{}
	for _, e := range plan.Excluded {
		why[e.ID] = e.Reason
	}
	if !strings.Contains(why["relayed-id"], "relay") || !strings.Contains(why["picky-id"], "some members only") {
		t.Errorf("exclusions %v", why)
	}
	for _, id := range []string{"offline-id", "server-id"} {
		if _, ok := why[id]; ok || slices.Contains(plan.Workers, id) {
			t.Errorf("%s is no worker of this pool, yet the plan names it", id)
		}
	}

	// A worker the tunnel cannot reach is left out for a while.
	if _, err := h.tunnels(t.Context(), plan); err == nil {
		t.Fatal("a tunnel opened in a mesh without tunnels")
	}
	plan, _ = h.Plan()
	if len(plan.Workers) != 0 {
		t.Errorf("an unreachable worker is still planned: %v", plan.Workers)
	}
}

// A model on no machine yet: the host waits for a peer that has it, says
// so, and takes it as soon as a pull can get it.
func TestHostWaitsForTheModel(t *testing.T) {
	m := enginetest.TestModel(t)
	node := newFakeNode(t)
	var mu sync.Mutex
	have := false
	node.pull = func(ref string) (library.Model, error) {
		mu.Lock()
		defer mu.Unlock()
		if !have {
			return library.Model{}, &library.NotFoundError{Name: ref}
		}
		return library.Model{Name: m.Alias, Path: m.Path}, nil
	}
	h := New(Config{Name: "head", CtxSize: 256, Threads: 1}, &fakeMesh{self: "head-id"}, node, "friend/model:Q4")
	h.Start(t.Context())
	defer h.Stop()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(node.warning("model"), "waiting for a peer that has friend/model:Q4") {
		if time.Now().After(deadline) {
			t.Fatalf("no warning; status %+v", h.Status())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if path, alias := h.Ident(); path != "" || alias != "friend/model:Q4" {
		t.Errorf("before the pull: %q %q", path, alias)
	}
	mu.Lock()
	have = true
	mu.Unlock()
	h.Kick() // a peer came: try again
	select {
	case <-node.ready:
	case <-time.After(90 * time.Second):
		t.Fatalf("not ready after the pull: %+v", h.Status())
	}
	if path, _ := h.Ident(); path != m.Path || node.warning("model") != "" {
		t.Errorf("after the pull: path %q, warning %q", path, node.warning("model"))
	}
}

package route

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/host"
	"github.com/potluck-gpu/potluck/nodestate"
	"github.com/potluck-gpu/potluck/server"
)

// fakeMesh is members that share as servers; a tunnel to one reaches
// what stands for its model API in the test.
type fakeMesh struct {
	mu      sync.Mutex
	peers   []nodestate.Peer
	tunnels map[string]string // peer id: address
}

func (m *fakeMesh) Self() string { return "me-id" }

func (m *fakeMesh) Peers() []nodestate.Peer {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.peers)
}

func (m *fakeMesh) Tunnel(_ context.Context, id, service string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if service != "openai" {
		return "", errors.New("wrong service " + service)
	}
	if a, ok := m.tunnels[id]; ok {
		return a, nil
	}
	return "", errors.New("unreachable")
}

// The pool's models are the union of what the online servers serve, with
// what each does once its node said; a request for one goes to the nodes
// that serve it, with their last load, and one for no model is told what
// there is.
func TestRouterListsAndRoutes(t *testing.T) {
	// What stands for a member's model proxy: it says what its model
	// does on host.ModelInfoPath.
	var asked sync.WaitGroup
	asked.Add(1)
	var once sync.Once
	peerAPI := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != host.ModelInfoPath {
			http.NotFound(w, r)
			return
		}
		json.NewEncoder(w).Encode(server.Model{ID: "llama3", Capabilities: []string{"completion", "embedding"}})
		once.Do(asked.Done)
	}))
	defer peerAPI.Close()
	mesh := &fakeMesh{
		peers: []nodestate.Peer{
			{ID: "a-id", Name: "alice", Online: true, Mode: nodestate.ShareServer, Models: []string{"llama3"}, InFlight: 2, LastSeenMS: 500},
			{ID: "b-id", Name: "bob", Online: true, Mode: nodestate.ShareServer, Models: []string{"llama3", "qwen"}},
			{ID: "c-id", Name: "carol", Online: false, Mode: nodestate.ShareServer, Models: []string{"gone"}},
			{ID: "d-id", Name: "dave", Online: true, Mode: nodestate.ShareWorker, Models: []string{"shard"}},
		},
		tunnels: map[string]string{"a-id": strings.TrimPrefix(peerAPI.URL, "http://")},
	}
	r := New(Config{Name: "me", Service: "openai"}, mesh, func() *host.Host { return nil })

	models := r.Models()
	var ids []string
	for _, m := range models {
		ids = append(ids, m.ID)
	}
	if !slices.Equal(ids, []string{"llama3", "qwen"}) {
		t.Fatalf("models %v", ids)
	}
	if !slices.Equal(models[0].Nodes, []string{"alice/a-id", "bob/b-id"}) || !models[0].Ready {
		t.Errorf("llama3 %+v", models[0])
	}
	// What alice's model does is asked in the background; the list has
	// it once she answered.
	asked.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for !slices.Contains(r.Models()[0].Capabilities, "embedding") {
		if time.Now().After(deadline) {
			t.Fatalf("capabilities never came: %+v", r.Models()[0])
		}
		time.Sleep(10 * time.Millisecond)
	}

	// bob's tunnel fails: he is left out, alice serves with her load.
	backends, err := r.Backends("llama3")
	if err != nil || len(backends) != 1 || backends[0].Node != "alice/a-id" || backends[0].Load != 2 ||
		backends[0].BaseURL != peerAPI.URL || time.Since(backends[0].LoadAt) < 500*time.Millisecond {
		t.Errorf("backends %+v, %v", backends, err)
	}
	var unknown *server.UnknownModelError
	if _, err := r.Backends("mistral"); !errors.As(err, &unknown) || !slices.Equal(unknown.Available, []string{"llama3", "qwen"}) {
		t.Errorf("unknown model: %v", err)
	}
	if _, err := r.Backends("qwen"); !errors.Is(err, server.ErrLoading) {
		t.Errorf("a model no node can be reached for: %v", err)
	}

	empty := New(Config{Name: "me", Service: "openai"}, &fakeMesh{}, func() *host.Host { return nil })
	if _, err := empty.Backends(""); !errors.Is(err, server.ErrNoModel) {
		t.Errorf("no model anywhere: %v", err)
	}
}

// A model only members have on disk is listed as such, and a request for
// it goes to the servers that have it, which load it: those that load
// nothing for members (--allow-peer-loads=false) only when no other
// has it, so that the answer says why.
func TestRouterPeerDisk(t *testing.T) {
	file := func(model string) []nodestate.OfferedFile {
		return []nodestate.OfferedFile{{Model: model, File: model + ".gguf", SHA256: strings.Repeat("ab", 32), Size: 1 << 20}}
	}
	mesh := &fakeMesh{
		peers: []nodestate.Peer{
			{ID: "a-id", Name: "alice", Online: true, Mode: nodestate.ShareServer, Files: file("tiny")},
			{ID: "b-id", Name: "bob", Online: true, Mode: nodestate.ShareServer, Files: file("tiny"), NoPeerLoads: true},
			{ID: "c-id", Name: "carol", Online: true, Mode: nodestate.ShareServer, Files: file("other"), NoPeerLoads: true},
			{ID: "d-id", Name: "dave", Online: true, Mode: nodestate.ShareOff, Files: file("dave's")},
		},
		tunnels: map[string]string{"a-id": "127.0.0.1:1", "b-id": "127.0.0.1:2", "c-id": "127.0.0.1:3", "d-id": "127.0.0.1:4"},
	}
	r := New(Config{Name: "me", Service: "openai"}, mesh, func() *host.Host { return nil })
	got := map[string]string{}
	for _, m := range r.Models() {
		got[m.ID] = m.Availability
	}
	if want := map[string]string{"tiny": server.AvailPeerDisk, "other": server.AvailPeerDisk}; !maps.Equal(got, want) {
		t.Errorf("models %v, want %v", got, want)
	}
	nodes := func(model string) []string {
		t.Helper()
		bs, err := r.Backends(model)
		if err != nil {
			t.Fatalf("backends of %s: %v", model, err)
		}
		var out []string
		for _, b := range bs {
			out = append(out, b.Node)
		}
		return out
	}
	if got := nodes("tiny"); !slices.Equal(got, []string{"alice/a-id"}) {
		t.Errorf("tiny goes to %v, want alice's, which loads it", got)
	}
	if got := nodes("other"); !slices.Equal(got, []string{"carol/c-id"}) {
		t.Errorf("other goes to %v, want carol's, who says why she will not", got)
	}
}

// A member that serves several models says what each does when asked by
// name; each model in the list takes its own answer.
func TestRouterAsksEachPeerModel(t *testing.T) {
	caps := map[string][]string{"llama3": {"completion"}, "bge": {"embedding"}}
	peerAPI := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.URL.Query().Get("model")
		if r.URL.Path != host.ModelInfoPath || caps[id] == nil {
			http.NotFound(w, r)
			return
		}
		json.NewEncoder(w).Encode(server.Model{ID: id, Capabilities: caps[id]})
	}))
	defer peerAPI.Close()
	mesh := &fakeMesh{
		peers:   []nodestate.Peer{{ID: "a-id", Name: "alice", Online: true, Mode: nodestate.ShareServer, Models: []string{"bge", "llama3"}}},
		tunnels: map[string]string{"a-id": strings.TrimPrefix(peerAPI.URL, "http://")},
	}
	r := New(Config{Name: "me", Service: "openai"}, mesh, func() *host.Host { return nil })
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := map[string][]string{}
		for _, m := range r.Models() {
			got[m.ID] = m.Capabilities
		}
		if slices.Equal(got["llama3"], caps["llama3"]) && slices.Equal(got["bge"], caps["bge"]) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("capabilities %v, want %v", got, caps)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

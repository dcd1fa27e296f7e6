package llama

import (
	"sync"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/engine"
	"github.com/potluck-gpu/potluck/hw"
	"github.com/potluck-gpu/potluck/nodestate"
	"github.com/potluck-gpu/potluck/runtimes"
	"github.com/potluck-gpu/potluck/runtimes/runtimestest"
	"github.com/potluck-gpu/potluck/worker"
)

// node keeps what the keeper tells it.
type node struct {
	mu       sync.Mutex
	warnings map[string]string
	changed  int
}

func (n *node) Warn(w nodestate.Warning) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.warnings[w.Code] = w.Message
}

func (n *node) ClearWarning(code string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.warnings, code)
}

func (n *node) Changed()             { n.mu.Lock(); n.changed++; n.mu.Unlock() }
func (n *node) Hardware() *hw.Report { return nil }

func (n *node) warning(code string) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.warnings[code]
}

// A machine without llama.cpp: the keeper fetches the pinned release from
// the releases (here a service carrying a real build), shows the progress,
// then runs it; a head that splits with the same release needs no other.
func TestKeeperFetchesAndRuns(t *testing.T) {
	b := runtimestest.Binaries(t, "linux")
	srv := runtimestest.New(t)
	if _, err := srv.AddBuild(b.Version, "linux", b.Dir); err != nil {
		t.Fatal(err)
	}
	n := &node{warnings: map[string]string{}}
	k := New(Config{Locator: engine.Locator{}, Store: runtimes.Store{Dir: t.TempDir()}, Version: b.Version,
		Backend: runtimes.BackendCPU, Releases: srv.URL, UserAgent: "potluck-test"}, n)
	if !k.Find(t.Context()) {
		t.Fatal("nothing installed, yet the keeper would not fetch")
	}
	if st := k.Status(); st.Available || st.Provisioning == nil || st.Provisioning.Version != b.Version || k.Err() != ErrFetching {
		t.Errorf("while fetching: %+v, %v", st, k.Err())
	}
	arrived := make(chan struct{})
	go k.Fetch(t.Context(), func() { close(arrived) })
	select {
	case <-arrived:
	case <-time.After(2 * time.Minute):
		t.Fatalf("llama.cpp did not arrive: %+v", k.Status())
	}
	if err := k.Wait(t.Context()); err != nil {
		t.Fatal(err)
	}
	rt, v, err := k.Runtime()
	st := k.Status()
	if err != nil || rt.Server.Path == "" || v.Release != b.Version || !st.Available || st.Provisioning != nil ||
		len(st.Installed) != 1 || st.Wanted != b.Version {
		t.Errorf("after the fetch: %+v %+v %v; status %+v", rt, v, err, st)
	}
	if w := n.warning("llama-not-found"); w != "" {
		t.Errorf("warning left: %s", w)
	}

	// A head on the same release: the worker runs the node's own.
	if err := k.Lend(t.Context(), worker.Need{Release: v.Release, Protocol: v.RPCProtocol, Head: "desk"}); err != nil {
		t.Fatal(err)
	}
	if _, wv, matches, err := k.WorkerRuntime(); err != nil || matches != "" || wv != v {
		t.Errorf("worker runtime %+v %q %v", wv, matches, err)
	}
	// A head on a protocol this release does not speak: refused, and
	// the worker keeps what it ran.
	if err := k.Lend(t.Context(), worker.Need{Release: v.Release, Protocol: "0.0.1", Head: "old"}); err == nil {
		t.Error("a release that does not speak the head's protocol was taken")
	}
}

// No llama.cpp and no fetching: the node says what to do.
func TestKeeperWithNone(t *testing.T) {
	n := &node{warnings: map[string]string{}}
	k := New(Config{Locator: engine.Locator{}, NoFetch: true}, n)
	if k.Find(t.Context()) {
		t.Fatal("fetching although told not to")
	}
	if err := k.Wait(t.Context()); err == nil || k.Status().Available {
		t.Errorf("no llama.cpp, yet %v", err)
	}
	if w := n.warning("llama-not-found"); w == "" {
		t.Error("no warning says what to do")
	}
}

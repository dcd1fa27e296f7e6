package worker

import (
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/engine/enginetest"
	"github.com/potluck-gpu/potluck/nodestate"
	"github.com/potluck-gpu/potluck/rpcgate"
	"github.com/potluck-gpu/potluck/rpcgate/rpcgatetest"
)

// members is a network in which every stream comes from one member,
// chosen by the test, and this machine lends to some of them.
type members struct {
	mu      sync.Mutex
	from    string
	lent    map[string]bool
	refused map[string][]string // peer id: reasons
}

func (m *members) PeerOfConn(string) (string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.from, m.from != ""
}

func (m *members) LendsTo(id string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lent[id]
}

func (m *members) Refused(id string, r *rpcgate.Refusal) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.refused[id] = append(m.refused[id], r.Reason)
}

func (m *members) streamFrom(t *testing.T, w *Worker, id string) net.Conn {
	t.Helper()
	m.mu.Lock()
	m.from = id
	m.mu.Unlock()
	c, err := net.Dial("tcp", w.GateAddr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// The real rpc-server behind the gate: a member lent to speaks to it, a
// member not lent to is held off without counting against it, and a member
// that sends what no inference needs is refused and counted. Stop ends the
// worker.
func TestWorkerBehindItsGate(t *testing.T) {
	m := &members{lent: map[string]bool{"friend": true, "hostile": true}, refused: map[string][]string{}}
	var stopped []error
	w, err := Start(t.Context(), Spec{Runtime: enginetest.Runtime(t), Devices: []string{"CPU"}, Threads: 1,
		CacheDir: filepath.Join(t.TempDir(), "cache"), Budget: func() uint64 { return 64 << 20 },
		Stopped: func(err error) { stopped = append(stopped, err) }}, m)
	if err != nil {
		t.Fatal(err)
	}
	if w.Status().State.String() != "ready" {
		t.Errorf("worker state %v", w.Status().State)
	}

	c := m.streamFrom(t, w, "friend")
	if _, err := rpcgatetest.Hello(c, 10*time.Second); err != nil {
		t.Fatalf("a lent-to member's HELLO: %v", err)
	}
	c.Close() // rpc-server serves one head at a time

	c = m.streamFrom(t, w, "stranger")
	if !rpcgatetest.Closed(c, 5*time.Second) {
		t.Error("a member this machine does not lend to was let through")
	}

	c = m.streamFrom(t, w, "hostile")
	major, err := rpcgatetest.Hello(c, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	attack := rpcgatetest.Attacks()[2] // a 1 TB buffer, over the budget
	c.Write(attack.Frame(major))
	if !rpcgatetest.Closed(c, 5*time.Second) {
		t.Errorf("%s was not refused", attack.Name)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		m.mu.Lock()
		got := m.refused
		m.mu.Unlock()
		if len(got["hostile"]) == 1 && got["hostile"][0] == attack.Reason && len(got) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("refusals %v; want one %q against hostile only", got, attack.Reason)
		}
		time.Sleep(10 * time.Millisecond)
	}

	addr := w.Addr()
	w.Stop()
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Error("the worker still answers after Stop")
	}
	if len(stopped) != 0 {
		t.Errorf("Stop was reported as the worker stopping by itself: %v", stopped)
	}
}

func TestBudgetAndMemory(t *testing.T) {
	if Budget(8<<30) != 10<<30 || Memory(Budget(8<<30)) != 11<<30 || Memory(0) != 0 {
		t.Errorf("Budget(8 GiB) = %d, Memory = %d", Budget(8<<30), Memory(Budget(8<<30)))
	}
}

// The seeder copies the file an online head loads into the worker's cache,
// once, and then says so; a file this machine lacks, or an offline head's,
// is left alone.
func TestSeeder(t *testing.T) {
	m := enginetest.TestModel(t)
	s := &Seeder{CacheBase: t.TempDir()}
	here := map[string]string{"have": m.Path}
	lookup := func(sha string) (string, bool) { p, ok := here[sha]; return p, ok }
	heads := []nodestate.Peer{
		{ID: "asleep", Online: false, Head: []string{"have"}},
		{ID: "head", Online: true, Head: []string{"missing", "have"}},
	}
	done := make(chan struct{}, 2)
	s.Next(t.Context(), heads[:1], lookup, func() { done <- struct{}{} })
	s.Next(t.Context(), heads, lookup, func() { done <- struct{}{} })
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the file was not seeded")
	}
	if got := s.Seeded(); len(got) != 1 || got[0] != "have" {
		t.Errorf("seeded %v", got)
	}
	s.Next(t.Context(), heads, lookup, func() { done <- struct{}{} })
	select {
	case <-done:
		t.Error("a file already in the cache was seeded again")
	case <-time.After(200 * time.Millisecond):
	}
}

package sched

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/nodestate"
)

// model stands for a host: it is ready once started, and serves as many
// requests as the test says. The real hosts are driven through the
// binary in the root package's tests.
type model struct {
	bytes    uint64
	inFlight atomic.Int64
	started  atomic.Int32
	stopped  atomic.Int32
}

func (m *model) Start(context.Context) { m.started.Add(1) }
func (m *model) Stop()                 { m.stopped.Add(1) }
func (m *model) InFlight() int         { return int(m.inFlight.Load()) }
func (m *model) Footprint() uint64     { return m.bytes }
func (m *model) LocalAddr() string {
	if m.started.Load() > 0 && m.stopped.Load() == 0 {
		return "127.0.0.1:1"
	}
	return ""
}
func (m *model) Status() *nodestate.ModelStatus {
	return &nodestate.ModelStatus{Ready: m.LocalAddr() != ""}
}

type pool struct {
	mu     sync.Mutex
	opened map[string]*model
	sizes  map[string]uint64
}

func (p *pool) config() Config {
	return Config{
		Resolve: func(name string) (string, bool) { _, ok := p.sizes[name]; return name, ok },
		Open: func(key string) (Model, error) {
			p.mu.Lock()
			defer p.mu.Unlock()
			m := &model{bytes: p.sizes[key]}
			p.opened[key] = m
			return m, nil
		},
	}
}

func (p *pool) model(key string) *model {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.opened[key]
}

func start(t *testing.T, cfg Config) *Scheduler {
	s := New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	for {
		s.mu.Lock()
		up := s.ctx != nil
		s.mu.Unlock()
		if up {
			return s
		}
		time.Sleep(time.Millisecond)
	}
}

func keys(s *Scheduler) []string {
	var out []string
	for _, l := range s.Loaded() {
		out = append(out, l.Key)
	}
	return out
}

// With room for two, a third model unloads the least recently used idle
// one, never one that serves; with none idle, the load is refused.
func TestSchedulerMakesRoom(t *testing.T) {
	p := &pool{opened: map[string]*model{}, sizes: map[string]uint64{"a": 100, "b": 150, "c": 200}}
	cfg := p.config()
	var s *Scheduler
	// As the node's does: what is loaded counts in what there is.
	cfg.Memory = func() uint64 { s.Loaded(); return 360 }
	s = start(t, cfg)
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	s.mu.Lock()
	s.now = func() time.Time { return time.Unix(0, clock.Load()) }
	s.mu.Unlock()
	tick := func() { clock.Add(int64(time.Second)) }

	for _, k := range []string{"a", "b"} {
		if _, err := s.Load(k, nil); err != nil {
			t.Fatal(err)
		}
		tick()
	}
	if _, err := s.Load("a", nil); err != nil { // a is used after b now
		t.Fatal(err)
	}
	tick()
	if _, err := s.Load("c", nil); err != nil {
		t.Fatal(err)
	}
	if got := keys(s); len(got) != 2 || got[0] != "a" || got[1] != "c" {
		t.Fatalf("after loading c: loaded %v, want [a c] (b was the least recently used)", got)
	}
	if p.model("b").stopped.Load() != 1 {
		t.Fatal("b was not stopped")
	}
	tick()

	// a serves a request; c is idle: b's load must unload c, not a.
	p.model("a").inFlight.Add(1)
	if _, err := s.Load("b", nil); err != nil {
		t.Fatal(err)
	}
	if got := keys(s); len(got) != 2 || got[0] != "a" || got[1] != "b" {
		t.Fatalf("with a busy: loaded %v, want [a b]", got)
	}
	tick()
	// Both busy: no room for c.
	p.model("b").inFlight.Add(1)
	if _, err := s.Load("c", nil); err == nil {
		t.Fatalf("loaded c with every model busy; loaded %v", keys(s))
	}
	if p.model("a").stopped.Load() != 0 {
		t.Fatal("a was stopped while it served")
	}
}

// Twenty requests at once for a model that is not loaded start it once.
func TestSchedulerLoadsOnce(t *testing.T) {
	p := &pool{opened: map[string]*model{}, sizes: map[string]uint64{"a": 1}}
	s := start(t, p.config())
	var wg sync.WaitGroup
	got := make([]Model, 20)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, err := s.Load("a", nil)
			if err != nil {
				t.Error(err)
			}
			got[i] = m
		}()
	}
	wg.Wait()
	for _, m := range got {
		if m != got[0] {
			t.Fatal("requests got different models")
		}
	}
	if n := got[0].(*model).started.Load(); n != 1 {
		t.Fatalf("started %d times, want once", n)
	}
}

// A keep-alive of 0 unloads a model once it is idle; one of -1 keeps it;
// a pinned model stays whatever a request says.
func TestSchedulerKeepAlive(t *testing.T) {
	p := &pool{opened: map[string]*model{}, sizes: map[string]uint64{"a": 1, "b": 1, "pinned": 1}}
	s := start(t, p.config())
	pinned := &model{}
	s.Pin("pinned", pinned)
	zero, forever := time.Duration(0), Forever
	if _, err := s.Load("a", &zero); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load("b", &forever); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load("pinned", &zero); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for p.model("a").stopped.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("a model kept alive for 0 was not unloaded")
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second)
	if got := keys(s); len(got) != 2 || got[0] != "b" || got[1] != "pinned" {
		t.Fatalf("loaded %v, want [b pinned]", got)
	}
	for _, l := range s.Loaded() {
		if !l.Expires.IsZero() {
			t.Errorf("%s expires at %v; kept for good, it should not", l.Key, l.Expires)
		}
	}
}

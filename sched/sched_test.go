package sched

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/nodestate"
)

// fakeModel is a Model that is ready as soon as it starts.
type fakeModel struct {
	bytes   uint64
	started atomic.Bool
	stopped atomic.Bool
}

func (m *fakeModel) Start(context.Context) { m.started.Store(true) }
func (m *fakeModel) Stop()                 { m.stopped.Store(true) }
func (m *fakeModel) InFlight() int         { return 0 }
func (m *fakeModel) Footprint() uint64     { return m.bytes }

func (m *fakeModel) LocalAddr() string {
	if m.started.Load() && !m.stopped.Load() {
		return "127.0.0.1:1"
	}
	return ""
}

func (m *fakeModel) Status() *nodestate.ModelStatus {
	return &nodestate.ModelStatus{Ready: m.LocalAddr() != ""}
}

var _ Model = (*fakeModel)(nil)

// A memory cap that counts what is loaded asks the scheduler while it
// decides: the node's own cap does (what the planner offers plus what the
// loaded models take). Load must not hold its lock then.
func TestLoadMemoryAsksScheduler(t *testing.T) {
	var s *Scheduler
	s = New(Config{
		Memory: func() uint64 {
			var used uint64
			for _, l := range s.Loaded() {
				used += l.Model.Footprint()
			}
			return used + 1<<30
		},
		Resolve: func(name string) (string, bool) { return name, true },
		Open:    func(string) (Model, error) { return &fakeModel{bytes: 1 << 20}, nil },
	})
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		s.Run(ctx)
	}()
	defer func() {
		cancel()
		select {
		case <-ran:
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after its context ended")
		}
	}()
	done := make(chan error, 1)
	go func() {
		// Until Run has begun, Load says the node is not running.
		for _, err := s.Load("first", nil); err != nil; _, err = s.Load("first", nil) {
			time.Sleep(10 * time.Millisecond)
		}
		_, err := s.Load("second", nil)
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Load is stuck: it called Config.Memory under its own lock")
	}
	if got := len(s.Loaded()); got != 2 {
		t.Errorf("%d models loaded, want 2", got)
	}
}

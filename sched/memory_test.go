package sched

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/nodestate"
)

// sizedModel is a model that only takes room.
type sizedModel struct{ bytes uint64 }

func (sizedModel) Start(context.Context)          {}
func (sizedModel) Stop()                          {}
func (sizedModel) InFlight() int                  { return 0 }
func (sizedModel) LocalAddr() string              { return "" }
func (sizedModel) Status() *nodestate.ModelStatus { return &nodestate.ModelStatus{} }
func (m sizedModel) Footprint() uint64            { return m.bytes }
func (m sizedModel) String() string               { return "sized" }

var _ Model = sizedModel{}

// The node's memory cap counts what is loaded already (Loaded): a load
// asking for it must not hold the lock Loaded takes.
func TestLoadMemoryAsksLoaded(t *testing.T) {
	var s *Scheduler
	s = New(Config{
		Memory: func() uint64 {
			total := uint64(1 << 30)
			for _, l := range s.Loaded() {
				total += l.Model.Footprint()
			}
			return total
		},
		Resolve: func(name string) (string, bool) { return name, true },
		Open:    func(string) (Model, error) { return sizedModel{bytes: 400 << 20}, nil },
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ran := make(chan struct{})
	go func() { s.Run(ctx); close(ran) }()

	for _, key := range []string{"a", "b"} {
		done := make(chan error, 1)
		go func() {
			for {
				_, err := s.Load(key, nil)
				if err == nil || !strings.Contains(err.Error(), "not running") {
					done <- err
					return
				}
				time.Sleep(time.Millisecond) // until Run has started
			}
		}()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Load(%q): %v", key, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("Load(%q) did not return: it holds the lock Memory's Loaded needs", key)
		}
	}
	if got := len(s.Loaded()); got != 2 {
		t.Fatalf("%d models loaded, want 2", got)
	}
	cancel()
	<-ran
}

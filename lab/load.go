package lab

import (
	"context"
	"sync"
	"time"

	"github.com/potluck-gpu/potluck/internal/nodetest"
)

// Result is one request of a Load.
type Result struct {
	Start time.Time
	nodetest.Stream
}

// Load keeps a number of streamed chat requests going through one node's
// API, each as soon as the last one of its worker ended.
type Load struct {
	limit  time.Duration
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	results []Result
}

// StartLoad starts workers clients that each stream chat requests of
// maxTokens tokens for model through n, one after the other, until Stop.
// A request still going after limit is abandoned and counts as hung.
func (n *Node) StartLoad(model string, workers, maxTokens int, limit time.Duration) *Load {
	ctx, cancel := context.WithCancel(context.Background())
	l := &Load{limit: limit, cancel: cancel}
	for range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for ctx.Err() == nil {
				start := time.Now()
				rctx, rcancel := context.WithTimeout(context.Background(), limit)
				s := n.StreamChat(rctx, model, maxTokens)
				rcancel()
				l.mu.Lock()
				l.results = append(l.results, Result{Start: start, Stream: s})
				l.mu.Unlock()
				if s.Outcome(limit) != nodetest.Completed {
					// Do not spin on a failing API.
					select {
					case <-ctx.Done():
					case <-time.After(100 * time.Millisecond):
					}
				}
			}
		}()
	}
	return l
}

// Results returns the requests that ended so far.
func (l *Load) Results() []Result {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Result(nil), l.results...)
}

// Stop starts no more requests, waits for those in flight (each ends within
// the limit) and returns every result.
func (l *Load) Stop() []Result {
	l.cancel()
	l.wg.Wait()
	return l.Results()
}

// Limit is how long a request may take before it counts as hung.
func (l *Load) Limit() time.Duration { return l.limit }

package server

import (
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

// Backend is one llama-server that can serve a model: this node's own, or a
// peer's reached through a mesh tunnel.
type Backend struct {
	Node    string // "<name>/<peer-id>", sent back as X-Potluck-Node
	BaseURL string // e.g. http://127.0.0.1:41234
	// Load is the requests the backend had in flight, from every client,
	// when it last said so (at LoadAt); zero LoadAt: not known.
	Load   int
	LoadAt time.Time
}

// Candidate is a backend with the load it is believed to have.
type Candidate struct {
	Backend
	// InFlight is the backend's Load plus the requests this node sent it
	// since then and that have not finished (streams ended).
	InFlight int
}

// Selector is a load-balancing policy: it picks one of the candidates and
// returns its index. It is called with at least one candidate.
type Selector interface {
	Select(candidates []Candidate) int
}

// LeastBusy picks the candidate with the fewest requests in flight, counted
// from the start of a request to the end of its stream, and breaks ties at
// random so equal nodes share the load.
type LeastBusy struct {
	Rand func(n int) int // optional, for tests; default math/rand/v2
}

var _ Selector = LeastBusy{}

// Select implements Selector.
func (l LeastBusy) Select(cs []Candidate) int {
	pick, best, ties := -1, 0, 0
	for i, c := range cs {
		switch {
		case pick == -1 || c.InFlight < best:
			pick, best, ties = i, c.InFlight, 1
		case c.InFlight == best:
			// Reservoir sampling: each tied candidate wins with 1/ties.
			ties++
			if l.intn(ties) == 0 {
				pick = i
			}
		}
	}
	return pick
}

func (l LeastBusy) intn(n int) int {
	if l.Rand != nil {
		return l.Rand(n)
	}
	return rand.IntN(n)
}

// inflight counts requests per backend node.
// inflight tracks the requests this node has sent to each backend and not
// finished, with when each started.
type inflight struct {
	mu sync.Mutex
	n  map[string][]time.Time
}

func (f *inflight) candidatesLocked(bs []Backend) []Candidate {
	cs := make([]Candidate, len(bs))
	for i, b := range bs {
		// What the backend said covers the requests already running
		// then; count only the ones started since.
		since := 0
		for _, t := range f.n[b.Node] {
			if t.After(b.LoadAt) {
				since++
			}
		}
		cs[i] = Candidate{Backend: b, InFlight: b.Load + since}
	}
	return cs
}

// pick selects a backend and counts the request against it in one step, so
// simultaneous requests see each other. The caller must call release.
func (f *inflight) pick(bs []Backend, sel Selector) (b Backend, release func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b = bs[sel.Select(f.candidatesLocked(bs))]
	if f.n == nil {
		f.n = map[string][]time.Time{}
	}
	start := time.Now()
	f.n[b.Node] = append(f.n[b.Node], start)
	var once sync.Once
	return b, func() { once.Do(func() { f.done(b.Node, start) }) }
}

func (f *inflight) done(node string, start time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ts := f.n[node]
	if i := slices.Index(ts, start); i >= 0 {
		ts = slices.Delete(ts, i, i+1)
	}
	if len(ts) == 0 {
		delete(f.n, node)
	} else {
		f.n[node] = ts
	}
}

func (f *inflight) total() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := 0
	for _, v := range f.n {
		t += len(v)
	}
	return t
}

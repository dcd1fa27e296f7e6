package server

import (
	"math/rand/v2"
	"sync"
)

// Backend is one llama-server that can serve a model: this node's own, or a
// peer's reached through a mesh tunnel.
type Backend struct {
	Node    string // "<name>/<peer-id>", sent back as X-Potluck-Node
	BaseURL string // e.g. http://127.0.0.1:41234
}

// Candidate is a backend with the load this node has put on it.
type Candidate struct {
	Backend
	InFlight int // requests sent to it and not finished (stream ended)
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
type inflight struct {
	mu sync.Mutex
	n  map[string]int
}

func (f *inflight) candidatesLocked(bs []Backend) []Candidate {
	cs := make([]Candidate, len(bs))
	for i, b := range bs {
		cs[i] = Candidate{Backend: b, InFlight: f.n[b.Node]}
	}
	return cs
}

// pick selects a backend and counts the request against it in one step, so
// simultaneous requests see each other. The caller must call release.
func (f *inflight) pick(bs []Backend, sel Selector) (b Backend, release func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b = bs[sel.Select(f.candidatesLocked(bs))]
	f.addLocked(b.Node, 1)
	var once sync.Once
	return b, func() { once.Do(func() { f.add(b.Node, -1) }) }
}

func (f *inflight) add(node string, d int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.addLocked(node, d)
}

func (f *inflight) addLocked(node string, d int) {
	if f.n == nil {
		f.n = map[string]int{}
	}
	f.n[node] += d
	if f.n[node] <= 0 {
		delete(f.n, node)
	}
}

func (f *inflight) total() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := 0
	for _, v := range f.n {
		t += v
	}
	return t
}

package worker

import (
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/potluck-gpu/potluck/nodestate"
	"github.com/potluck-gpu/potluck/rpcgate"
)

// Refusals are what the gate refused: counted by reason, for /metrics,
// and held against the member who sent it, for the owner to see.
type Refusals struct {
	mu       sync.Mutex
	byReason map[string]uint64
	byPeer   map[string]nodestate.RPCRefusal
}

// Note counts a refusal of peer's stream.
func (r *Refusals) Note(peer string, ref *rpcgate.Refusal) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byReason == nil {
		r.byReason, r.byPeer = map[string]uint64{}, map[string]nodestate.RPCRefusal{}
	}
	r.byReason[ref.Reason]++
	p := r.byPeer[peer]
	r.byPeer[peer] = nodestate.RPCRefusal{Count: p.Count + 1, Reason: ref.Reason, Detail: ref.Detail, Time: time.Now()}
}

// Reasons are the refusals so far, by reason.
func (r *Refusals) Reasons() map[string]uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.byReason)
}

// Of is the last refusal of peer's streams, with their count; nil: none.
func (r *Refusals) Of(peer string) *nodestate.RPCRefusal {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p, ok := r.byPeer[peer]; ok {
		return &p
	}
	return nil
}

// Peers are the members whose streams were refused, sorted.
func (r *Refusals) Peers() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Sorted(maps.Keys(r.byPeer))
}

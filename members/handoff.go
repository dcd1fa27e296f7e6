package members

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/potluck-gpu/potluck/netmesh"
)

// HandoffMaxAge is how long a retired network waits for members to move.
const HandoffMaxAge = 7 * 24 * time.Hour

// A Handoff is what a retired network hands out, and to whom: the owner's
// signed removal, to the members that have not moved to the next token
// yet. The retired network admits those members alone.
type Handoff struct {
	token   string // the retired network's token
	removal []byte
	since   time.Time

	mu      sync.Mutex
	pending map[string]bool // members that have not moved yet
	kick    chan struct{}
}

// SavedHandoff is a handoff as the settings keep it, to resume after a
// restart.
type SavedHandoff struct {
	Token   string    `json:"token"`   // the retired token
	Removal []byte    `json:"removal"` // the owner's signed removal
	Pending []string  `json:"pending"` // peer ids of members that have not moved
	Since   time.Time `json:"since"`
}

// NewHandoff starts handing out the signed removal on the network of token
// to the members in pending, as of since.
func NewHandoff(token string, removal []byte, pending []string, since time.Time) *Handoff {
	h := &Handoff{token: token, removal: removal, since: since, pending: map[string]bool{}, kick: make(chan struct{}, 1)}
	for _, id := range pending {
		h.pending[id] = true
	}
	return h
}

// Resume is NewHandoff for one the settings kept.
func Resume(s SavedHandoff) *Handoff { return NewHandoff(s.Token, s.Removal, s.Pending, s.Since) }

// Token is the retired network's token.
func (h *Handoff) Token() string { return h.token }

// Saved is the handoff as the settings keep it.
func (h *Handoff) Saved() SavedHandoff {
	return SavedHandoff{Token: h.token, Removal: h.removal, Pending: h.Pending(), Since: h.since}
}

// IsPending says whether the member has not moved yet.
func (h *Handoff) IsPending(id string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.pending[id]
}

// Moved notes that a member reached the next network, and wakes Run to
// see whether anyone is left. It reports whether the member was pending.
func (h *Handoff) Moved(id string) bool {
	h.mu.Lock()
	was := h.pending[id]
	delete(h.pending, id)
	h.mu.Unlock()
	if was {
		select {
		case h.kick <- struct{}{}:
		default:
		}
	}
	return was
}

// Peers are the peers of a network as its node sees them: netmesh.Node.
type Peers interface {
	Peers() []netmesh.Peer
}

var _ Peers = (*netmesh.Node)(nil)

// MovedOnline notes as moved the members online on next, the network
// moved to.
func (h *Handoff) MovedOnline(next Peers) {
	for _, p := range next.Peers() {
		if p.Online {
			h.Moved(p.PeerID)
		}
	}
}

// Pending lists the members that have not moved yet, sorted.
func (h *Handoff) Pending() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Sorted(maps.Keys(h.pending))
}

// Over says whether the handoff has nothing left to do at now: everyone
// moved, or it waited HandoffMaxAge.
func (h *Handoff) Over(now time.Time) bool {
	return len(h.Pending()) == 0 || now.Sub(h.since) > HandoffMaxAge
}

// Bootstrap lists where the pending members were last seen, as roll
// knows them, to dial them on the retired network.
func (h *Handoff) Bootstrap(roll *Roll) []string {
	var boot []string
	for _, id := range h.Pending() {
		m, ok := roll.Get(id)
		if !ok {
			continue
		}
		for _, a := range m.Addrs {
			if !strings.Contains(a, "/p2p/") {
				a += "/p2p/" + id
			}
			if _, err := peer.AddrInfoFromString(a); err == nil {
				boot = append(boot, a)
			}
		}
	}
	return boot
}

// A Network is what a handoff needs of the retired network it runs on:
// netmesh.Node.
type Network interface {
	Notify(payload []byte) error
	Subscribe() (<-chan netmesh.PeerEvent, func())
}

var _ Network = (*netmesh.Node)(nil)

// ErrNetworkClosed: the retired network stopped before the handoff ended.
var ErrNetworkClosed = errors.New("the retired network closed")

// NudgeEvery is how often Run hands the removal out again, for a network
// whose heartbeat is heartbeat (zero: the default). Gossip is best effort,
// so the removal goes out again until everyone has it; a fast heartbeat
// (in tests) asks for a fast nudge.
func NudgeEvery(heartbeat time.Duration) time.Duration {
	every := 2 * time.Second
	if heartbeat > 0 && heartbeat < every {
		every = max(heartbeat, 500*time.Millisecond)
	}
	return every
}

// Run hands the removal out on net every so often, and at once when a
// pending member joins, until the handoff is over: then it returns nil,
// and the retired network can close. It returns ctx's error when ctx ends
// first, and ErrNetworkClosed when net's events end.
func (h *Handoff) Run(ctx context.Context, net Network, every time.Duration, log func(err error)) error {
	t := time.NewTicker(every)
	defer t.Stop()
	events, cancel := net.Subscribe()
	defer cancel()
	for {
		if h.Over(time.Now()) {
			return nil
		}
		if err := net.Notify(h.removal); err != nil && log != nil {
			log(err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		case <-h.kick:
		case ev, ok := <-events:
			if !ok {
				return ErrNetworkClosed
			}
			if ev.Type == netmesh.PeerJoined && h.IsPending(ev.Peer.PeerID) {
				continue // hand it over at once
			}
		}
	}
}

package members_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/members"
	"github.com/potluck-gpu/potluck/netmesh"
)

func TestHandoff(t *testing.T) {
	now := time.Now()
	h := members.NewHandoff("old-token", []byte("removal"), []string{"b", "a", "c"}, now)
	if got := h.Pending(); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Errorf("pending %v", got)
	}
	if !h.IsPending("a") || h.IsPending("owner") {
		t.Error("IsPending")
	}
	if !h.Moved("a") || h.Moved("a") || h.Moved("stranger") {
		t.Error("Moved reports a pending member once, and nobody else")
	}
	h.MovedOnline(peers{{NodeInfo: netmesh.NodeInfo{PeerID: "b"}, Online: true}, {NodeInfo: netmesh.NodeInfo{PeerID: "c"}}})
	if got := h.Pending(); !slices.Equal(got, []string{"c"}) {
		t.Errorf("after b came online on the next network, pending %v, want c", got)
	}
	if h.Over(now) {
		t.Error("over while c is still to move")
	}
	if !h.Over(now.Add(members.HandoffMaxAge + time.Minute)) {
		t.Error("not over after HandoffMaxAge")
	}
	saved := h.Saved()
	want := members.SavedHandoff{Token: "old-token", Removal: []byte("removal"), Pending: []string{"c"}, Since: now}
	if saved.Token != want.Token || string(saved.Removal) != string(want.Removal) || !slices.Equal(saved.Pending, want.Pending) || !saved.Since.Equal(want.Since) {
		t.Errorf("saved %+v, want %+v", saved, want)
	}
	back := members.Resume(saved)
	if back.Token() != "old-token" || !slices.Equal(back.Pending(), []string{"c"}) || back.Over(now) {
		t.Errorf("resumed %+v", back.Saved())
	}
	h.Moved("c")
	if !h.Over(now) {
		t.Error("not over once everyone moved")
	}
}

func TestHandoffBootstrap(t *testing.T) {
	_, enc, _ := ownedNetwork(t)
	b, c, d := newMember(t, enc, "b"), newMember(t, enc, "c"), newMember(t, enc, "d")
	roll, err := members.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	roll.Seen(members.Member{PeerID: b.node.ID(), Name: "b", Addrs: []string{"/ip4/192.0.2.1/tcp/4001", "not an address"}}, now)
	roll.Seen(members.Member{PeerID: c.node.ID(), Name: "c", Addrs: []string{"/ip4/192.0.2.2/udp/4001/quic-v1/p2p/" + c.node.ID()}}, now)
	roll.Seen(members.Member{PeerID: d.node.ID(), Name: "d", Addrs: []string{"/ip4/192.0.2.3/tcp/4001"}}, now)
	h := members.NewHandoff("t", nil, []string{b.node.ID(), c.node.ID(), "unknown"}, now)
	got := h.Bootstrap(roll)
	want := []string{"/ip4/192.0.2.1/tcp/4001/p2p/" + b.node.ID(), "/ip4/192.0.2.2/udp/4001/quic-v1/p2p/" + c.node.ID()}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("bootstrap\n got %v\nwant %v", got, want)
	}
}

func TestNudgeEvery(t *testing.T) {
	for _, tc := range []struct{ heartbeat, want time.Duration }{
		{0, 2 * time.Second},
		{5 * time.Second, 2 * time.Second},
		{time.Second, time.Second},
		{100 * time.Millisecond, 500 * time.Millisecond},
	} {
		if got := members.NudgeEvery(tc.heartbeat); got != tc.want {
			t.Errorf("NudgeEvery(%v) = %v, want %v", tc.heartbeat, got, tc.want)
		}
	}
}

func TestHandoffRun(t *testing.T) {
	t.Run("ends when everyone moved", func(t *testing.T) {
		h := members.NewHandoff("t", []byte("removal"), []string{"b", "c"}, time.Now())
		net := newFakeNetwork()
		done := make(chan error, 1)
		go func() { done <- h.Run(context.Background(), net, time.Hour, nil) }()
		net.waitNotices(t, 1)
		// A pending member that joins the retired network gets it at once,
		// not at the next tick an hour away.
		net.events <- netmesh.PeerEvent{Type: netmesh.PeerJoined, Peer: netmesh.Peer{NodeInfo: netmesh.NodeInfo{PeerID: "b"}}}
		net.waitNotices(t, 2)
		h.Moved("b")
		h.Moved("c")
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Run: %v, want nil once everyone moved", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Run goes on after everyone moved")
		}
		for _, p := range net.sent() {
			if string(p) != "removal" {
				t.Errorf("notified %q, want the removal", p)
			}
		}
	})
	t.Run("stops with its context", func(t *testing.T) {
		h := members.NewHandoff("t", []byte("removal"), []string{"b"}, time.Now())
		ctx, cancel := context.WithCancel(context.Background())
		net := newFakeNetwork()
		done := make(chan error, 1)
		go func() { done <- h.Run(ctx, net, time.Hour, nil) }()
		net.waitNotices(t, 1)
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run: %v, want the context's error: the handoff is not over", err)
		}
	})
	t.Run("stops when the network closes", func(t *testing.T) {
		h := members.NewHandoff("t", []byte("removal"), []string{"b"}, time.Now())
		net := newFakeNetwork()
		close(net.events)
		var logged []error
		net.fail = errors.New("not ready")
		err := h.Run(context.Background(), net, time.Hour, func(err error) { logged = append(logged, err) })
		if !errors.Is(err, members.ErrNetworkClosed) {
			t.Errorf("Run: %v, want ErrNetworkClosed", err)
		}
		if len(logged) != 1 {
			t.Errorf("logged %v, want the failed notice", logged)
		}
	})
	t.Run("over before it starts", func(t *testing.T) {
		h := members.NewHandoff("t", []byte("removal"), nil, time.Now())
		net := newFakeNetwork()
		if err := h.Run(context.Background(), net, time.Hour, nil); err != nil || len(net.sent()) != 0 {
			t.Errorf("Run: %v after %d notices, want nil after none", err, len(net.sent()))
		}
	})
}

type peers []netmesh.Peer

func (p peers) Peers() []netmesh.Peer { return p }

// fakeNetwork is a retired network that records what it was asked to
// publish.
type fakeNetwork struct {
	events chan netmesh.PeerEvent
	fail   error

	mu      sync.Mutex
	notices [][]byte
	changed chan struct{}
}

func newFakeNetwork() *fakeNetwork {
	return &fakeNetwork{events: make(chan netmesh.PeerEvent), changed: make(chan struct{}, 100)}
}

func (f *fakeNetwork) Notify(p []byte) error {
	f.mu.Lock()
	f.notices = append(f.notices, p)
	f.mu.Unlock()
	f.changed <- struct{}{}
	return f.fail
}

func (f *fakeNetwork) Subscribe() (<-chan netmesh.PeerEvent, func()) { return f.events, func() {} }

func (f *fakeNetwork) sent() [][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.notices)
}

func (f *fakeNetwork) waitNotices(t *testing.T, n int) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for len(f.sent()) < n {
		select {
		case <-f.changed:
		case <-deadline:
			t.Fatalf("%d notices, want %d", len(f.sent()), n)
		}
	}
}

var _ members.Network = (*fakeNetwork)(nil)

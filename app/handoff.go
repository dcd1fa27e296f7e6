package app

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/potluck-gpu/potluck/members"
	"github.com/potluck-gpu/potluck/settings"
)

// A retired session is a network this node moved away from when its owner
// removed a member: it stays up to hand the removal to the members still
// on it (members.Handoff decides who and until when).

// startHandoff keeps the retired network of h up for the members still to
// move, until they have. The caller holds opMu.
func (n *Node) startHandoff(ctx context.Context, h *members.Handoff) {
	if cur := n.currentMesh(); cur != nil {
		h.MovedOnline(cur.node)
	}
	if h.Over(time.Now()) {
		return
	}
	s, err := n.openSession(ctx, h.Token(), sessionOptions{bootstrap: h.Bootstrap(n.roll), retired: h})
	if err != nil {
		n.log.Warn("keep the old network up for members still on it", "err", err)
		return
	}
	n.mu.Lock()
	n.retired = append(n.retired, s)
	n.mu.Unlock()
	n.log.Info("keeping the old network up until these members move", "pending", strings.Join(h.Pending(), ", "))
	go func() {
		ctx, stop := context.WithCancel(context.Background())
		defer stop()
		go func() {
			select {
			case <-s.done:
			case <-ctx.Done():
			}
			stop()
		}()
		logErr := func(err error) { n.log.Debug("hand out the removal", "err", err) }
		if h.Run(ctx, s.node, members.NudgeEvery(n.cfg.Heartbeat), logErr) == nil {
			n.endHandoff(s)
		}
	}()
}

// movedHere notes that a member reached the node's network.
func (n *Node) movedHere(id string) {
	n.mu.Lock()
	retired := slices.Clone(n.retired)
	n.mu.Unlock()
	for _, s := range retired {
		if s.retired.Moved(id) {
			n.saveHandoffs()
		}
	}
}

// notYetMoved says whether a member is still on a token the network moved
// away from.
func (n *Node) notYetMoved(id string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.ContainsFunc(n.retired, func(s *meshSession) bool { return s.retired.IsPending(id) })
}

// endHandoff closes a retired session.
func (n *Node) endHandoff(s *meshSession) {
	n.mu.Lock()
	n.retired = slices.DeleteFunc(n.retired, func(x *meshSession) bool { return x == s })
	n.mu.Unlock()
	n.closeSession(s)
	n.saveHandoffs()
	n.log.Info("every member moved to the new token: the old network is closed")
}

// closeRetired closes every retired session, e.g. on leaving the network.
func (n *Node) closeRetired() {
	n.mu.Lock()
	retired := n.retired
	n.retired = nil
	n.mu.Unlock()
	for _, s := range retired {
		n.closeSession(s)
	}
}

// forgetRetired closes the retired sessions for good: the node leaves
// their network.
func (n *Node) forgetRetired() {
	n.closeRetired()
	n.modify(func(s *settings.Settings) { s.Handoffs, s.PastTokens = nil, nil })
}

// resumeHandoffs reopens the retired networks saved in the settings.
func (n *Node) resumeHandoffs(ctx context.Context) {
	n.opMu.Lock()
	defer n.opMu.Unlock()
	for _, h := range n.settings.Get().Handoffs {
		n.startHandoff(ctx, members.Resume(h))
	}
	n.saveHandoffs()
}

// saveHandoffs records the retired sessions in the settings.
func (n *Node) saveHandoffs() {
	n.mu.Lock()
	var handoffs []members.SavedHandoff
	for _, s := range n.retired {
		handoffs = append(handoffs, s.retired.Saved())
	}
	n.mu.Unlock()
	n.modify(func(s *settings.Settings) { s.Handoffs = handoffs })
}

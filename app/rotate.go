package app

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/potluck-gpu/potluck/members"
	"github.com/potluck-gpu/potluck/netmesh"
	"github.com/potluck-gpu/potluck/nodestate"
	"github.com/potluck-gpu/potluck/settings"
)

// Removing a member, as the owner:
//
//  1. sign a removal that names the member and carries the network's next
//     token sealed to each remaining member (see members.Removal);
//  2. publish it on the network, and move to the next token at once;
//  3. keep the old network up as a retired session that admits only the
//     members still to move and hands them the removal, until all have moved.
//
// Every member that receives the removal does the same from step 2. A
// member that was offline meets a retired session when it comes back on the
// old token, and moves then. The removed machine is refused everywhere.

// handoffMaxAge is how long a retired network waits for members to move.
const handoffMaxAge = 7 * 24 * time.Hour

// handoff is what a retired session hands out, and to whom.
type handoff struct {
	removal []byte // the owner's signed removal
	since   time.Time

	mu      sync.Mutex
	pending map[string]bool // members that have not moved yet
	kick    chan struct{}
}

func newHandoff(removal []byte, pending []string, since time.Time) *handoff {
	h := &handoff{removal: removal, since: since, pending: map[string]bool{}, kick: make(chan struct{}, 1)}
	for _, id := range pending {
		h.pending[id] = true
	}
	return h
}

func (h *handoff) isPending(id string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.pending[id]
}

// moved notes that a member reached the new network; it reports whether
// nobody is left to wait for.
func (h *handoff) moved(id string) (empty bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.pending, id)
	return len(h.pending) == 0
}

func (h *handoff) pendingIDs() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Sorted(maps.Keys(h.pending))
}

func (h *handoff) nudge() {
	select {
	case h.kick <- struct{}{}:
	default:
	}
}

// ownerIDOf is the peer id an owner key stands for.
func ownerIDOf(key crypto.PrivKey) string {
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return ""
	}
	return id.String()
}

// RemoveMember removes a member by name or peer id. Only the network's
// owner can: see the comment at the top of this file.
func (n *Node) RemoveMember(ctx context.Context, who string) (nodestate.RemovalResult, error) {
	n.opMu.Lock()
	defer n.opMu.Unlock()
	s := n.currentMesh()
	if s == nil {
		return nodestate.RemovalResult{}, errNoMesh
	}
	if s.tok.Owner() == "" {
		return nodestate.RemovalResult{}, &nodestate.InputError{Field: "peer", Msg: members.ErrNoOwner.Error()}
	}
	key, err := netmesh.LoadOwnerKey(n.cfg.DataDir)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && ownerIDOf(key) != s.tok.Owner()) {
		return nodestate.RemovalResult{}, &members.NotOwnerError{Owner: s.tok.Owner()}
	}
	if err != nil {
		return nodestate.RemovalResult{}, err
	}
	m, err := n.roll.Find(who)
	if err != nil {
		return nodestate.RemovalResult{}, err
	}
	self := s.node.ID()
	switch {
	case m.PeerID == self:
		return nodestate.RemovalResult{}, &nodestate.InputError{Field: "peer", Value: who, Msg: "that is this computer, the network's owner: it cannot remove itself"}
	case m.IsRemoved():
		return nodestate.RemovalResult{}, &nodestate.InputError{Field: "peer", Value: who, Msg: "was removed already"}
	}
	next, err := s.tok.Rotate()
	if err != nil {
		return nodestate.RemovalResult{}, err
	}
	removed := []members.Ref{{PeerID: m.PeerID, Name: m.Name}}
	var recipients []members.Recipient
	for _, x := range n.roll.List() {
		if !x.IsRemoved() && x.PeerID != self && x.PeerID != m.PeerID {
			recipients = append(recipients, members.Recipient{Ref: members.Ref{PeerID: x.PeerID, Name: x.Name}, SealKey: x.SealKey})
		}
	}
	// The new network listens on the ports the old one has now, so the
	// removal can tell the others where to find this node.
	signed, r, skipped, err := members.NewRemoval(key, s.tok, next, s.node.Addrs(), removed, recipients, time.Now())
	if err != nil {
		return nodestate.RemovalResult{}, err
	}
	nextToken, err := next.Encode()
	if err != nil {
		return nodestate.RemovalResult{}, err
	}
	n.log.Info("removing a member", "name", m.Name, "peer_id", m.PeerID, "moving", len(r.Grants))
	if err := n.applyLocked(ctx, s, signed, r, nextToken, nil); err != nil {
		return nodestate.RemovalResult{}, err
	}
	res := nodestate.RemovalResult{Removed: removed[0], Skipped: skipped, Token: next.Fingerprint()}
	for _, x := range recipients {
		if _, ok := r.Grants[x.PeerID]; ok {
			res.Moving = append(res.Moving, x.Ref)
		}
	}
	return res, nil
}

// onNotice receives a notice on session s: a signed removal, perhaps. It
// runs on the mesh's message loop, so the work goes elsewhere.
func (n *Node) onNotice(s *meshSession, from string, payload []byte) {
	if n.heardLedger(from, payload) {
		return
	}
	id := members.ID(payload)
	n.mu.Lock()
	if n.applied[id] {
		n.mu.Unlock()
		return
	}
	n.mu.Unlock()
	r, err := members.OpenRemoval(payload, s.tok)
	if err != nil {
		n.log.Debug("ignored a notice", "from", from, "err", err)
		return
	}
	go n.applyRemoval(s, payload, r)
}

// applyRemoval carries out a removal received on session s.
func (n *Node) applyRemoval(s *meshSession, signed []byte, r members.Removal) {
	n.opMu.Lock()
	defer n.opMu.Unlock()
	id := members.ID(signed)
	n.mu.Lock()
	if n.applied[id] {
		n.mu.Unlock()
		return
	}
	n.applied[id] = true
	runCtx := n.runCtx
	n.mu.Unlock()
	if runCtx == nil || runCtx.Err() != nil {
		return
	}
	if n.currentMesh() != s {
		// A retired session hears its own removal again: already done.
		n.blockRemoved(s, r)
		return
	}
	self := s.node.ID()
	if r.Names(self) {
		n.blockRemoved(s, r)
		n.log.Warn("the network's owner removed this computer from the network")
		n.modify(func(set *settings.Settings) { set.RemovedFrom = s.tok.Fingerprint() })
		n.warnRemoved()
		return
	}
	g, ok, err := r.OpenGrant(self, s.node.OpenSealed)
	if err == nil && ok {
		if nt, perr := netmesh.ParseToken(g.Token); perr != nil || nt.Owner() != s.tok.Owner() {
			err = errors.New("the new token names another owner")
		}
	}
	switch {
	case !ok:
		n.blockRemoved(s, r)
		n.warn(nodestate.Warning{Code: "network-moved", Severity: nodestate.SeverityError, Message: fmt.Sprintf(
			"the network's owner removed %s and moved the network to a new token, but did not give it to this computer: ask the owner for a new invite token",
			refNames(r.Removed))})
		return
	case err != nil:
		n.blockRemoved(s, r)
		n.warn(nodestate.Warning{Code: "network-moved", Severity: nodestate.SeverityError, Message: "the network moved to a new token that this computer could not open: " + err.Error()})
		return
	}
	n.log.Info("the network's owner removed a member; moving to the new token", "removed", refNames(r.Removed))
	if err := n.applyLocked(runCtx, s, signed, r, g.Token, g.Bootstrap); err != nil {
		n.warn(nodestate.Warning{Code: "network-moved", Severity: nodestate.SeverityError, Message: "could not move to the network's new token: " + err.Error()})
	}
}

// applyLocked carries out a removal on the node's network s: it refuses
// the removed members, moves to next and keeps s up as a retired session
// for the members still to move. The caller holds opMu.
func (n *Node) applyLocked(ctx context.Context, s *meshSession, signed []byte, r members.Removal, next string, bootstrap []string) error {
	n.mu.Lock()
	n.applied[members.ID(signed)] = true
	n.mu.Unlock()
	n.roll.MarkRemoved(time.Now(), r.RemovedIDs()...)
	n.saveRoll()
	self := s.node.ID()
	// Tell the network on the old token, so that everyone online moves
	// now and the removed machine learns why it is alone. Gossip needs a
	// moment to leave before the node goes.
	if err := s.node.Notify(signed); err != nil {
		n.log.Debug("publish the removal", "err", err)
	}
	pause(ctx, 300*time.Millisecond)
	n.blockRemoved(s, r)
	listen := s.node.ListenAddrs()
	n.mu.Lock()
	n.mesh = nil
	n.mu.Unlock()
	n.closeSession(s)
	ns, err := n.openSessionOn(ctx, next, bootstrap, listen)
	if err != nil {
		// Stay where we were rather than nowhere.
		if back, berr := n.openSession(ctx, s.token, sessionOptions{}); berr == nil {
			n.installMesh(back)
			_ = n.reexpose()
		}
		return err
	}
	n.installMesh(ns)
	if err := n.reexpose(); err != nil {
		n.log.Warn("share on the new token", "err", err)
	}
	var pending []string
	for id := range r.Grants {
		if id != self {
			pending = append(pending, id)
		}
	}
	n.modify(func(set *settings.Settings) {
		set.Token = next
		set.PastTokens = appendBounded(set.PastTokens, s.tok.Fingerprint(), settings.MaxPastTokens)
	})
	if len(pending) > 0 {
		n.startHandoff(ctx, s.token, signed, pending, time.Now())
	}
	n.saveHandoffs()
	n.clearWarning("network-moved")
	n.events.publish(nodestate.Event{Kind: nodestate.EventJoined, Message: fmt.Sprintf("%s was removed; the network moved to a new token", refNames(r.Removed))})
	if h := n.modelHost(); h != nil {
		h.Kick()
	}
	return nil
}

// openSessionOn opens a session listening on listen, or where configured
// when those ports are taken.
func (n *Node) openSessionOn(ctx context.Context, token string, bootstrap, listen []string) (*meshSession, error) {
	if len(listen) > 0 {
		s, err := n.openSession(ctx, token, sessionOptions{bootstrap: bootstrap, listen: listen})
		if err == nil {
			return s, nil
		}
		n.log.Debug("listen on the old network's ports", "err", err)
	}
	return n.openSession(ctx, token, sessionOptions{bootstrap: bootstrap})
}

// blockRemoved refuses the removed members on session s.
func (n *Node) blockRemoved(s *meshSession, r members.Removal) {
	n.roll.MarkRemoved(time.Now(), r.RemovedIDs()...)
	for _, id := range r.RemovedIDs() {
		if id == s.node.ID() {
			continue
		}
		if err := s.node.Block(id); err != nil {
			n.log.Debug("block a removed member", "peer_id", id, "err", err)
		}
		s.closeTunnels(id)
	}
}

// startHandoff keeps the retired network of token up for the members in
// pending, handing them the removal. The caller holds opMu.
func (n *Node) startHandoff(ctx context.Context, token string, signed []byte, pending []string, since time.Time) {
	if cur := n.currentMesh(); cur != nil {
		for _, p := range cur.node.Peers() {
			if p.Online {
				pending = slices.DeleteFunc(pending, func(id string) bool { return id == p.PeerID })
			}
		}
	}
	if len(pending) == 0 || time.Since(since) > handoffMaxAge {
		return
	}
	h := newHandoff(signed, pending, since)
	// Dial the members still to move where they were last seen.
	var boot []string
	for _, id := range pending {
		if m, ok := n.roll.Get(id); ok {
			for _, a := range m.Addrs {
				if !strings.Contains(a, "/p2p/") {
					a += "/p2p/" + id
				}
				if _, err := peer.AddrInfoFromString(a); err == nil {
					boot = append(boot, a)
				}
			}
		}
	}
	s, err := n.openSession(ctx, token, sessionOptions{bootstrap: boot, retired: h})
	if err != nil {
		n.log.Warn("keep the old network up for members still on it", "err", err)
		return
	}
	n.mu.Lock()
	n.retired = append(n.retired, s)
	n.mu.Unlock()
	n.log.Info("keeping the old network up until these members move", "pending", strings.Join(h.pendingIDs(), ", "))
	go n.runHandoff(s)
}

// runHandoff republishes the removal on a retired session until every
// pending member has moved, or for handoffMaxAge.
func (n *Node) runHandoff(s *meshSession) {
	h := s.retired
	every := 2 * time.Second
	if hb := n.cfg.Heartbeat; hb > 0 && hb < every {
		every = max(hb, 500*time.Millisecond)
	}
	t := time.NewTicker(every)
	defer t.Stop()
	events, cancel := s.node.Subscribe()
	defer cancel()
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go func() {
		select {
		case <-s.done:
		case <-ctx.Done():
		}
		stop()
	}()
	for {
		if len(h.pendingIDs()) == 0 || time.Since(h.since) > handoffMaxAge {
			n.endHandoff(s)
			return
		}
		if err := s.node.Notify(h.removal); err != nil {
			n.log.Debug("hand out the removal", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-h.kick:
		case ev, ok := <-events:
			if !ok {
				return
			}
			if ev.Type == netmesh.PeerJoined && h.isPending(ev.Peer.PeerID) {
				continue // hand it over at once
			}
		}
	}
}

// movedHere notes that a member reached the node's network.
func (n *Node) movedHere(id string) {
	n.mu.Lock()
	retired := slices.Clone(n.retired)
	n.mu.Unlock()
	for _, s := range retired {
		if s.retired.isPending(id) {
			s.retired.moved(id)
			s.retired.nudge()
			n.saveHandoffs()
		}
	}
}

// notYetMoved says whether a member is still on a token the network moved
// away from.
func (n *Node) notYetMoved(id string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, s := range n.retired {
		if s.retired.isPending(id) {
			return true
		}
	}
	return false
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
		n.startHandoff(ctx, h.Token, h.Removal, h.Pending, h.Since)
	}
	n.saveHandoffs()
}

// saveHandoffs records the retired sessions in the settings.
func (n *Node) saveHandoffs() {
	n.mu.Lock()
	var handoffs []settings.SavedHandoff
	for _, s := range n.retired {
		handoffs = append(handoffs, settings.SavedHandoff{
			Token: s.token, Removal: s.retired.removal, Pending: s.retired.pendingIDs(), Since: s.retired.since})
	}
	n.mu.Unlock()
	n.modify(func(s *settings.Settings) { s.Handoffs = handoffs })
}

// warnRemoved tells the user this computer was removed.
func (n *Node) warnRemoved() {
	n.warn(nodestate.Warning{Code: "removed", Severity: nodestate.SeverityError,
		Message: "the network's owner removed this computer from the network: the others no longer accept it. Ask for a new invite token to join again"})
}

func refNames(refs []members.Ref) string {
	var names []string
	for _, r := range refs {
		if r.Name != "" {
			names = append(names, r.Name)
		} else {
			names = append(names, r.PeerID)
		}
	}
	return strings.Join(names, ", ")
}

func appendBounded(list []string, v string, max int) []string {
	if slices.Contains(list, v) {
		return list
	}
	list = append(list, v)
	if len(list) > max {
		list = list[len(list)-max:]
	}
	return list
}

// pause waits d or until ctx ends.
func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

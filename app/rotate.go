package app

import (
	"context"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/potluck-gpu/potluck/members"
	"github.com/potluck-gpu/potluck/netmesh"
	"github.com/potluck-gpu/potluck/nodestate"
	"github.com/potluck-gpu/potluck/settings"
)

// The removal of a member and the move to the next token are decided in
// package members (see members.Roll.Remove, members.Removal.Verdict and
// members.Handoff); this file carries them out on the node's sessions.

// RemoveMember removes a member by name or peer id. Only the network's
// owner can.
func (n *Node) RemoveMember(ctx context.Context, who string) (nodestate.RemovalResult, error) {
	n.opMu.Lock()
	defer n.opMu.Unlock()
	s := n.currentMesh()
	if s == nil {
		return nodestate.RemovalResult{}, errNoMesh
	}
	ownerKey := func() (crypto.PrivKey, error) { return netmesh.LoadOwnerKey(n.cfg.DataDir) }
	p, err := n.roll.Remove(s.tok, s.node.ID(), who, s.node.Addrs(), ownerKey, time.Now())
	if err != nil {
		return nodestate.RemovalResult{}, err
	}
	n.log.Info("removing a member", "name", p.Removed.Name, "peer_id", p.Removed.PeerID, "moving", len(p.Removal.Grants))
	if err := n.applyLocked(ctx, s, p.Signed, p.Removal, p.Next, nil); err != nil {
		return nodestate.RemovalResult{}, err
	}
	return nodestate.RemovalResult{Removed: p.Removed, Moving: p.Moving, Skipped: p.Skipped, Token: p.NextFingerprint}, nil
}

// onNotice receives a notice on session s: a signed removal, perhaps. It
// runs on the mesh's message loop, so the work goes elsewhere.
func (n *Node) onNotice(s *meshSession, from string, payload []byte) {
	if n.heardLedger(from, payload) || n.applied.Has(payload) {
		return
	}
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
	if !n.applied.Add(signed) {
		return
	}
	n.mu.Lock()
	runCtx := n.runCtx
	n.mu.Unlock()
	if runCtx == nil || runCtx.Err() != nil {
		return
	}
	v := r.Verdict(s.node, n.currentMesh() == s)
	if v.Action != members.Move {
		n.blockRemoved(s, r)
	}
	switch v.Action {
	case members.RemovedHere:
		n.log.Warn("the network's owner removed this computer from the network")
		n.modify(func(set *settings.Settings) { set.RemovedFrom = s.tok.Fingerprint() })
		n.warnRemoved()
	case members.LeftBehind, members.Unreadable:
		n.warn(nodestate.Warning{Code: "network-moved", Severity: nodestate.SeverityError, Message: v.Warning(r)})
	case members.Move:
		n.log.Info("the network's owner removed a member; moving to the new token", "removed", members.RefNames(r.Removed))
		if err := n.applyLocked(runCtx, s, signed, r, v.Grant.Token, v.Grant.Bootstrap); err != nil {
			n.warn(nodestate.Warning{Code: "network-moved", Severity: nodestate.SeverityError, Message: "could not move to the network's new token: " + err.Error()})
		}
	}
}

// applyLocked carries out a removal on the node's network s: it refuses
// the removed members, moves to next and keeps s up as a retired session
// for the members still to move. The caller holds opMu.
func (n *Node) applyLocked(ctx context.Context, s *meshSession, signed []byte, r members.Removal, next string, bootstrap []string) error {
	n.applied.Add(signed)
	n.roll.MarkRemoved(time.Now(), r.RemovedIDs()...)
	n.saveRoll()
	// Tell the network on the old token, so that everyone online moves
	// now and the removed machine learns why it is alone. Gossip needs a
	// moment to leave before the node goes.
	if err := s.node.Notify(signed); err != nil {
		n.log.Debug("publish the removal", "err", err)
	}
	select {
	case <-ctx.Done():
	case <-time.After(300 * time.Millisecond):
	}
	n.blockRemoved(s, r)
	listen := s.node.ListenAddrs()
	n.mu.Lock()
	n.mesh = nil
	n.mu.Unlock()
	n.closeSession(s)
	// The new network listens on the old one's ports where it can: the
	// removal told the others to find this node there.
	ns, err := n.openSession(ctx, next, sessionOptions{bootstrap: bootstrap, listen: listen})
	if err != nil && len(listen) > 0 {
		n.log.Debug("listen on the old network's ports", "err", err)
		ns, err = n.openSession(ctx, next, sessionOptions{bootstrap: bootstrap})
	}
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
	n.modify(func(set *settings.Settings) { set.MoveTo(next, s.tok.Fingerprint()) })
	if movers := r.Movers(s.node.ID()); len(movers) > 0 {
		n.startHandoff(ctx, members.NewHandoff(s.token, signed, movers, time.Now()))
	}
	n.saveHandoffs()
	n.clearWarning("network-moved")
	n.events.publish(nodestate.Event{Kind: nodestate.EventJoined, Message: fmt.Sprintf("%s was removed; the network moved to a new token", members.RefNames(r.Removed))})
	if h := n.modelHost(); h != nil {
		h.Kick()
	}
	return nil
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

// warnRemoved tells the user this computer was removed.
func (n *Node) warnRemoved() {
	n.warn(nodestate.Warning{Code: "removed", Severity: nodestate.SeverityError,
		Message: "the network's owner removed this computer from the network: the others no longer accept it. Ask for a new invite token to join again"})
}

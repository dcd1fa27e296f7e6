package app

import (
	"context"
	"time"

	"github.com/potluck-gpu/potluck/members"
	"github.com/potluck-gpu/potluck/netmesh"
	"github.com/potluck-gpu/potluck/nodestate"
)

// networkID names a network across token rotations.
func networkID(tok netmesh.Token) string { return tok.Network() }

// admits says whether session s lets a peer take part: nobody the owner
// removed, and on a retired network only the members still to move.
func (n *Node) admits(s *meshSession, id string) bool {
	if n.roll.IsRemoved(id) {
		return false
	}
	if s.retired != nil {
		return s.retired.IsPending(id)
	}
	return true
}

// seenSelf puts this node on the roll of its network.
func (n *Node) seenSelf() {
	s := n.currentMesh()
	if s == nil {
		return
	}
	info := s.node.Info()
	n.roll.Seen(members.Member{PeerID: info.PeerID, Name: info.Name, Addrs: s.node.Addrs(), SealKey: info.SealKey}, time.Now())
	n.saveRoll()
}

// seenPeer records a peer of the node's network on the roll.
func (n *Node) seenPeer(p netmesh.Peer, now time.Time) {
	n.roll.Seen(members.Member{PeerID: p.PeerID, Name: p.Name, Addrs: p.Addrs, SealKey: p.SealKey}, now)
}

func (n *Node) saveRoll() {
	if err := n.roll.Save(); err != nil {
		n.log.Warn("save the member list", "err", err)
	}
}

// keepRoll notes when online members were last seen and saves the roll now
// and then, rather than at every heartbeat.
func (n *Node) keepRoll(ctx context.Context) error {
	t := time.NewTicker(15 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			n.saveRoll()
			return nil
		case <-t.C:
		}
		if s := n.currentMesh(); s != nil {
			now := time.Now()
			for _, p := range s.node.Peers() {
				if p.Online {
					n.seenPeer(p, now)
				}
			}
			n.seenSelf()
		}
	}
}

// Members implements tray.Controller.
func (n *Node) Members() nodestate.MembersView {
	v := nodestate.MembersView{Members: []nodestate.MemberView{}}
	s := n.currentMesh()
	if s == nil {
		return v
	}
	v.InMesh = true
	v.Owner = s.tok.Owner()
	if v.Owner != "" {
		if key, err := netmesh.LoadOwnerKey(n.cfg.DataDir); err == nil {
			v.CanRemove = members.OwnerID(key) == v.Owner
		}
	}
	online := map[string]bool{}
	for _, p := range s.node.Peers() {
		online[p.PeerID] = p.Online
	}
	self := s.node.ID()
	for _, m := range n.roll.List() {
		mv := nodestate.MemberView{PeerID: m.PeerID, Name: m.Name, FirstSeen: m.FirstSeen, LastSeen: m.LastSeen,
			Online: online[m.PeerID] || m.PeerID == self, Self: m.PeerID == self, Status: nodestate.MemberActive}
		if mv.Self && v.CanRemove {
			mv.Owner = true
		}
		switch {
		case m.IsRemoved():
			mv.Status, mv.Online = nodestate.MemberRemoved, false
		case n.notYetMoved(m.PeerID):
			mv.Status = nodestate.MemberNotRotated
		}
		if mv.Online && !mv.Self {
			mv.LastSeen = time.Now()
		}
		mv.RPCRefused = n.gateRefusals.Of(m.PeerID)
		v.Members = append(v.Members, mv)
	}
	return v
}

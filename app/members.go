package app

import (
	"context"
	"fmt"
	"time"

	"github.com/potluck-gpu/potluck/members"
	"github.com/potluck-gpu/potluck/netmesh"
)

// MemberStatus says where a member stands.
type MemberStatus string

const (
	MemberActive     MemberStatus = "member"
	MemberNotRotated MemberStatus = "not yet rotated" // still on a token the network moved away from
	MemberRemoved    MemberStatus = "removed"
)

// MemberView is one member of the network, as GET /api/members shows it.
type MemberView struct {
	PeerID    string       `json:"peer_id"`
	Name      string       `json:"name"`
	FirstSeen time.Time    `json:"first_seen"`
	LastSeen  time.Time    `json:"last_seen"`
	Online    bool         `json:"online"`
	Self      bool         `json:"self,omitempty"`
	Owner     bool         `json:"owner,omitempty"` // holds the network's owner key
	Status    MemberStatus `json:"status"`
	// RPCRefused is what this node's RPC gate refused of the member:
	// streams to the shard worker that no inference sends.
	RPCRefused *RPCRefusal `json:"rpc_refused,omitempty"`
}

// Label is the member's name as a list shows it.
func (m MemberView) Label() string {
	name := m.Name
	if name == "" {
		name = "—"
	}
	switch {
	case m.Self && m.Owner:
		return name + " (this computer, owner)"
	case m.Self:
		return name + " (this computer)"
	}
	return name
}

// State is where the member stands, in a word or three: online, offline,
// removed or not yet rotated; and misbehaving, where the RPC gate refused
// what it sent.
func (m MemberView) State() string {
	state := "offline"
	switch {
	case m.Status != MemberActive:
		state = string(m.Status)
	case m.Online:
		state = "online"
	}
	if r := m.RPCRefused; r != nil && m.Status != MemberRemoved {
		state += fmt.Sprintf(", misbehaving: %d RPC stream(s) refused (%s)", r.Count, r.Reason)
	}
	return state
}

// MembersView is GET /api/members.
type MembersView struct {
	InMesh bool `json:"in_mesh"`
	// Owner is the peer id of the network's owner key; empty for a
	// network without one (made by EdgeVPN, LocalAI or an older Potluck).
	Owner string `json:"owner,omitempty"`
	// CanRemove says whether this computer can remove members: it holds
	// the owner key.
	CanRemove bool         `json:"can_remove"`
	Members   []MemberView `json:"members"`
}

// networkID names a network across token rotations.
func networkID(tok netmesh.Token) string { return tok.Network() }

// admits says whether session s lets a peer take part: nobody the owner
// removed, and on a retired network only the members still to move.
func (n *Node) admits(s *meshSession, id string) bool {
	if n.roll.IsRemoved(id) {
		return false
	}
	if s.retired != nil {
		return s.retired.isPending(id)
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

// Members implements Controller.
func (n *Node) Members() MembersView {
	v := MembersView{Members: []MemberView{}}
	s := n.currentMesh()
	if s == nil {
		return v
	}
	v.InMesh = true
	v.Owner = s.tok.Owner()
	if v.Owner != "" {
		if key, err := netmesh.LoadOwnerKey(n.cfg.DataDir); err == nil {
			v.CanRemove = ownerIDOf(key) == v.Owner
		}
	}
	online := map[string]bool{}
	for _, p := range s.node.Peers() {
		online[p.PeerID] = p.Online
	}
	self := s.node.ID()
	for _, m := range n.roll.List() {
		mv := MemberView{PeerID: m.PeerID, Name: m.Name, FirstSeen: m.FirstSeen, LastSeen: m.LastSeen,
			Online: online[m.PeerID] || m.PeerID == self, Self: m.PeerID == self, Status: MemberActive}
		if mv.Self && v.CanRemove {
			mv.Owner = true
		}
		switch {
		case m.IsRemoved():
			mv.Status, mv.Online = MemberRemoved, false
		case n.notYetMoved(m.PeerID):
			mv.Status = MemberNotRotated
		}
		if mv.Online && !mv.Self {
			mv.LastSeen = time.Now()
		}
		mv.RPCRefused = n.gateRefusals.of(m.PeerID)
		v.Members = append(v.Members, mv)
	}
	return v
}

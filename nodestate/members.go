package nodestate

import (
	"fmt"
	"time"

	"github.com/potluck-gpu/potluck/members"
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

// RemovalResult is what POST /api/members/remove answers.
type RemovalResult struct {
	Removed members.Ref `json:"removed"`
	// Moving are the members given the new token; they switch to it
	// without a restart, or when they next come online.
	Moving []members.Ref `json:"moving"`
	// Skipped are members that could not be given the new token (they
	// never announced a key: an older Potluck). Invite them again.
	Skipped []members.Ref `json:"skipped,omitempty"`
	// Token is the fingerprint of the network's new token.
	Token string `json:"token"`
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

package app

import (
	"cmp"
	"time"

	"github.com/potluck-gpu/potluck/members"
	"github.com/potluck-gpu/potluck/nodestate"
	"github.com/potluck-gpu/potluck/rpcgate"
	"github.com/potluck-gpu/potluck/worker"
)

// workerMembers are the network's members as the shard worker's gate asks
// of them; whose stream it is, the mesh says as it does for the host.
type workerMembers struct{ hostMesh }

var _ worker.Members = workerMembers{}

func (m workerMembers) LendsTo(peerID string) bool { return m.n.lendsTo(peerID) }

// Refused logs a refused stream, counts it against its member, puts the
// member on the roll (one that never announced itself is named there by
// its id, for the owner to remove) and tells the faces.
func (m workerMembers) Refused(peer string, ref *rpcgate.Refusal) {
	n := m.n
	name := ""
	if s := n.currentMesh(); s != nil {
		if p, ok := s.node.Peer(peer); ok {
			name = p.Name
		}
	}
	n.log.Warn("refused a head's stream to the shard worker", "peer", cmp.Or(name, peer), "peer_id", peer, "reason", ref.Reason, "detail", ref.Detail)
	n.gateRefusals.Note(peer, ref)
	n.roll.Seen(members.Member{PeerID: peer, Name: name}, time.Now())
	n.events.publish(nodestate.Event{Kind: nodestate.EventStatus})
}

// gateBudget is what a head may allocate on the worker now: see
// worker.Budget.
func (n *Node) gateBudget() uint64 { return worker.Budget(n.offer().TotalBytes) }

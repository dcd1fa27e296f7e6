package app

import (
	"github.com/potluck-gpu/potluck/nodestate"
	"github.com/potluck-gpu/potluck/rpcgate"
	"github.com/potluck-gpu/potluck/worker"
)

// workerMembers are the network's members as the shard worker's gate asks
// of them; whose stream it is, the mesh says as it does for the host.
type workerMembers struct{ hostMesh }

var _ worker.Members = workerMembers{}

func (m workerMembers) LendsTo(peerID string) bool { return m.n.lendsTo(peerID) }

// Refused logs a refused stream, counts it against its member and tells
// the faces.
func (m workerMembers) Refused(peer string, ref *rpcgate.Refusal) {
	n := m.n
	name := peer
	if s := n.currentMesh(); s != nil {
		for _, p := range s.node.Peers() {
			if p.PeerID == peer {
				name = p.Name
			}
		}
	}
	n.log.Warn("refused a head's stream to the shard worker", "peer", name, "peer_id", peer, "reason", ref.Reason, "detail", ref.Detail)
	n.gateRefusals.Note(peer, ref)
	n.events.publish(nodestate.Event{Kind: nodestate.EventStatus})
}

// gateBudget is what a head may allocate on the worker now: see
// worker.Budget.
func (n *Node) gateBudget() uint64 { return worker.Budget(n.offer().TotalBytes) }

package app

import (
	"maps"
	"net"
	"sync"
	"time"

	"github.com/potluck-gpu/potluck/nodestate"
	"github.com/potluck-gpu/potluck/rpcgate"
)

// The RPC gate (package rpcgate) stands in front of the shard worker: the
// mesh's rpc service reaches a loopback listener, and each connection goes
// on to the worker through the gate. What it refuses is counted by reason
// and held against the member who sent it, for the owner to see.

type refusals struct {
	mu       sync.Mutex
	byReason map[string]uint64
	byPeer   map[string]nodestate.RPCRefusal
}

func (r *refusals) note(peer string, ref *rpcgate.Refusal) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byReason == nil {
		r.byReason, r.byPeer = map[string]uint64{}, map[string]nodestate.RPCRefusal{}
	}
	r.byReason[ref.Reason]++
	p := r.byPeer[peer]
	r.byPeer[peer] = nodestate.RPCRefusal{Count: p.Count + 1, Reason: ref.Reason, Detail: ref.Detail, Time: time.Now()}
}

func (r *refusals) reasons() map[string]uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.byReason)
}

func (r *refusals) of(peer string) *nodestate.RPCRefusal {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p, ok := r.byPeer[peer]; ok {
		return &p
	}
	return nil
}

// startGate listens on loopback for the mesh's rpc streams and carries
// each to the worker at addr through the gate.
func (n *Node) startGate(addr string) (net.Listener, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	go func() {
		for {
			head, err := l.Accept()
			if err != nil {
				return
			}
			go n.gateConn(head, addr)
		}
	}()
	return l, nil
}

func (n *Node) gateConn(head net.Conn, addr string) {
	peer := n.streamPeer(head.RemoteAddr().String())
	if !n.lendsTo(peer) {
		// Not a misbehaving member: one this machine does not lend to,
		// whose head planned before it learnt so.
		head.Close()
		n.log.Info("held a stream to the shard worker from a member this computer does not lend to", "peer_id", peer)
		return
	}
	worker, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		head.Close()
		return
	}
	ref := rpcgate.Pipe(head, worker, rpcgate.Limits{MaxAlloc: n.gateBudget()})
	if ref == nil {
		return
	}
	name := peer
	if s := n.currentMesh(); s != nil {
		for _, p := range s.node.Peers() {
			if p.PeerID == peer {
				name = p.Name
			}
		}
	}
	n.log.Warn("refused a head's stream to the shard worker", "peer", name, "peer_id", peer, "reason", ref.Reason, "detail", ref.Detail)
	n.gateRefusals.note(peer, ref)
	n.events.publish(nodestate.Event{Kind: nodestate.EventStatus})
}

// streamPeer is the member behind a connection the mesh made to a local
// service; the mesh notes it right after it connects.
func (n *Node) streamPeer(remote string) string {
	s := n.currentMesh()
	if s == nil {
		return ""
	}
	for range 50 {
		if id, ok := s.node.PeerOfConn(remote); ok {
			return id
		}
		time.Sleep(10 * time.Millisecond)
	}
	return ""
}

// workerMemory is the most memory the worker may commit, where the sandbox
// bounds it: what the gate lets heads allocate, and a GiB for llama.cpp
// itself; 0 (no bound) before the hardware is known.
func (n *Node) workerMemory() uint64 {
	if b := n.gateBudget(); b > 0 {
		return b + 1<<30
	}
	return 0
}

// gateBudget is how much a head may allocate on the worker: what this
// machine lends, and a quarter more for the compute buffers a plan does
// not count; 0 (no bound) before the hardware is known.
func (n *Node) gateBudget() uint64 {
	total := n.offer().TotalBytes
	return total + total/4
}

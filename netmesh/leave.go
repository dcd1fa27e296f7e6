package netmesh

import (
	"encoding/json"
	"time"
)

// A member that stops says so: its peers mark it offline at once, and
// the gossip layer, which hands a member that just connected the messages
// of the last second (mcache), cannot make it look online to a newcomer
// by handing over its last heartbeat. Without the notice a newcomer took
// that heartbeat for a sign of life and listed a stopped member online
// for up to three heartbeats. A member that crashes sends nothing: its
// peers see its connections close (lost.go).

// leaving is the payload of a leaving notice: the sender's boot and the
// sequence number of its last heartbeat.
type leaving struct {
	Boot string `json:"boot"`
	Seq  uint64 `json:"seq"`
}

// leaveFlush is how long a stopping node waits for its leaving notice to
// go out before it closes its connections.
const leaveFlush = 200 * time.Millisecond

// sayLeaving publishes this node's leaving notice, if it has peers to
// tell, and waits for it to go out.
func (n *Node) sayLeaving() {
	if len(n.roster.onlineIDs()) == 0 || n.ready() != nil {
		return
	}
	n.self.mu.Lock()
	b, _ := json.Marshal(leaving{Boot: n.boot, Seq: n.self.seq})
	n.self.mu.Unlock()
	if err := n.publish(codecLeaving, b); err != nil {
		n.log.Debug("publish leaving notice", "err", err)
		return
	}
	time.Sleep(leaveFlush)
}

// handleLeaving takes a member's leaving notice.
func (n *Node) handleLeaving(id string, payload []byte) {
	var l leaving
	if err := json.Unmarshal(payload, &l); err != nil || l.Boot == "" {
		n.log.Debug("ignored a malformed leaving notice", "from", id)
		return
	}
	if n.roster.left(id, l.Boot, l.Seq, time.Now()) {
		n.log.Info("peer offline: it left", "peer", id)
	}
}

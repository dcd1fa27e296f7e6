package netmesh

import (
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
)

// A mesh's idle traffic grows with the square of its size: every member
// announces itself to every other. Measured in the lab with a 5 s
// heartbeat, 20 members moved 79 KB/s each, nearly all of it gossip: each
// heartbeat (about 0.9 KB sealed) reached every member about six times,
// once flooded by its sender and again from each gossip neighbour. Four
// things keep a large mesh quiet:
//
//   - the heartbeat slows as the mesh grows (paceEvery), so the mesh as a
//     whole sends about as many heartbeats as a mesh of paceMembers;
//   - gossip keeps few neighbours and tells few others what it has
//     (tuneGossip): members hold a direct connection to one another, and
//     the sender floods its own messages to all of them, so forwarding
//     and gossip only have to reach the few that are not;
//   - only a member alone asks the LAN for members often; the mesh as a
//     whole asks about once a minute (mdns.go);
//   - EdgeVPN's ledger, which Potluck leaves empty, is synced rarely.
//
// At 50 members on one LAN a member moves 13.6–14.8 KB/s (lab, stress50):
// gossip is about 8 KB/s of it, half of that heartbeats forwarded to members
// that had them from their sender; the rest is TCP and encryption.
//
// A member's liveness does not rest on the heartbeat alone: a member whose
// last connection closes is offline at once (see lost.go), and pings keep
// directly connected members alive between heartbeats.

// paceMembers is the largest mesh that heartbeats at the configured
// interval; past it the interval grows in proportion.
const paceMembers = 8

// maxPace bounds how slow a large mesh's heartbeat gets, in configured
// intervals: a member frozen (not disconnected) is noticed within about
// three of them.
const maxPace = 12

// paceEvery is the heartbeat interval of a node with online peers, for a
// configured interval of every.
func paceEvery(every time.Duration, online int) time.Duration {
	k := min(max(1, (online+paceMembers)/paceMembers), maxPace)
	return every * time.Duration(k)
}

// ledgerSyncPeriod is the period of EdgeVPN's ledger sync. Potluck keeps
// nothing in the ledger (signed heartbeats carry what nodes announce), so
// it only needs to be rare.
const ledgerSyncPeriod = 10 * time.Minute

// Gossip neighbours per member, and the members told each second what
// gossip holds (Dlazy). The defaults (6, between 5 and 12; 6, or a
// quarter of the others if more) suit a mesh whose members are not all
// connected to each other. Measured at 50 members, idle: 3 neighbours and
// gossip to a quarter moved 25.4 KB/s per member; gossip to 3, 17.5 KB/s;
// 2 neighbours, 14.8 KB/s.
const (
	gossipD     = 2
	gossipDlo   = 1
	gossipDhi   = 4
	gossipDlazy = 3
)

var tuneOnce sync.Once

// tuneGossip sets go-libp2p-pubsub's defaults, which EdgeVPN's message hub
// reads when it joins its room (it takes no parameters of its own). They
// are process-wide; netmesh is the only user of pubsub in Potluck.
func tuneGossip() {
	tuneOnce.Do(func() {
		pubsub.GossipSubD = gossipD
		pubsub.GossipSubDlo = gossipDlo
		pubsub.GossipSubDhi = gossipDhi
		pubsub.GossipSubDlazy = gossipDlazy
		pubsub.GossipSubDscore = 1
		pubsub.GossipSubDout = 0 // below D/2
		// Gossip (IHAVE) goes to Dlazy peers a second, not a quarter of
		// all: a sender floods its own messages to every member it is
		// connected to, so gossip only mends the few it is not.
		pubsub.GossipSubGossipFactor = 0
	})
}

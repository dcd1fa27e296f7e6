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
// once flooded by its sender and again from each gossip neighbour. What
// keeps a large mesh quiet:
//
//   - the heartbeat slows as the mesh grows (paceEvery), so the mesh as a
//     whole sends about as many heartbeats as a mesh of paceMembers, and
//     an idle member with a direct connection to every peer slows down
//     further (idleStretch);
//   - nothing is forwarded (tuneGossip): members hold a direct connection
//     to one another and a sender floods its own messages to all of them;
//     the few a member reaches only through a relay hear of its messages
//     from the others' gossip and fetch them;
//   - yamux measures a connection's round trip once (host.go), not every
//     30 s;
//   - only a member alone asks the LAN for members often; the mesh as a
//     whole asks about once a minute (mdns.go);
//   - EdgeVPN's ledger, which Potluck leaves empty, is synced rarely.
//
// Measured at 50 members on one LAN (lab, stress50), per member: 13.6–14.8
// KB/s with gossip forwarded by 2 neighbours; 2.2 KB/s without forwarding,
// with the idle stretch and yamux's round trip measured once (4.5 KB/s with
// those but forwarding). What is left, about 15 packets a second, is by
// count mostly the 49 connections' keepalives (yamux's, or the kernel's
// once yamux's are rarer: a keepalive of 60 s instead of 30 s moved
// nothing) and gossip's notes of what it holds.
//
// A member's liveness does not rest on the heartbeat alone: a member whose
// last connection closes is offline at once (see lost.go), a member that
// stops says so (leave.go), and pings keep directly connected members alive
// between heartbeats.

// paceMembers is the largest mesh that heartbeats at the configured
// interval; past it the interval grows in proportion.
const paceMembers = 8

// maxPace bounds how slow a large mesh's heartbeat gets, in configured
// intervals: a member frozen (not disconnected) is noticed within about
// three of them.
const maxPace = 12

// idleStretch slows the heartbeat of an idle member of a paced mesh (past
// paceMembers) further, when it has a direct connection to every online
// peer: its connections then tell its peers it is alive (yamux checks each
// every 30 s, and a member whose last connection closes is offline at once,
// lost.go), so a heartbeat that carries nothing new says nothing they need.
// Anything new (info, a peer to ask, addresses) goes out at once and at
// the mesh's pace.
const idleStretch = 4

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

// Gossip neighbours per member (none), and the members told each second
// what gossip received in the last second (Dlazy). The defaults (6
// neighbours, between 5 and 12; gossip about the last 3 s to 6, or a
// quarter of the others if more) suit a mesh whose members are not all
// connected to each other. Here a sender's flood reaches every member it
// is connected to, which is every member but the few behind relays, and
// forwarding only sent each message again: a member heard each heartbeat
// three times with 2 neighbours. Gossip to 3 reaches every member of a
// small mesh, so a member behind a relay still hears every message there.
const (
	gossipD     = 0
	gossipDlo   = 0
	gossipDhi   = 0
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
		pubsub.GossipSubDscore = 0
		pubsub.GossipSubDout = 0
		// Gossip (IHAVE) goes to Dlazy peers a second, not a quarter of
		// all, and tells of each message once: it only mends the few
		// members a sender is not connected to.
		pubsub.GossipSubGossipFactor = 0
		pubsub.GossipSubHistoryGossip = 1
	})
}

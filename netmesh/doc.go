// Package netmesh owns Potluck's peer-to-peer mesh: invite tokens, the node's
// persistent libp2p identity, joining and leaving a token-gated EdgeVPN network,
// the roster of peers with what they offer and whether they are alive, and
// loopback TCP services carried over libp2p streams.
//
// A node is built with [New], runs with [Node.Run] until its context ends, and
// is released with [Node.Close]. [Node.Up] waits until the node listens and has
// joined the network.
//
// Only holders of the invite token can talk to a node: the token is bound into
// the Noise handshake of every libp2p connection, so a peer with another token
// fails the handshake before any protocol runs.
//
// Liveness is judged from the local monotonic time at which each peer's
// heartbeat arrived; clocks of different machines are never compared. A peer
// whose last connection closes and that cannot be redialed is offline at
// once, without waiting for its heartbeats to stop.
package netmesh

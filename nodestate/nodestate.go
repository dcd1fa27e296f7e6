// Package nodestate is the vocabulary a node speaks to its faces: the
// status, peers, events and warnings the tray, the command line and the
// API render, and the views of members, usage, library and plans.
package nodestate

import "time"

// ShareMode is how a machine takes part in the pool.
type ShareMode string

const (
	ShareOff    ShareMode = "off"    // uses the pool, offers nothing
	ShareWorker ShareMode = "worker" // offers memory as a llama.cpp RPC shard
	ShareServer ShareMode = "server" // serves whole requests with its own llama-server
)

// ParseShareMode accepts "off", "worker" (or "shard") and "server".
func ParseShareMode(s string) (ShareMode, bool) {
	switch s {
	case "", "off", "none":
		return ShareOff, true
	case "worker", "shard":
		return ShareWorker, true
	case "server", "federated":
		return ShareServer, true
	}
	return "", false
}

// NodeState is the node's place in its life.
type NodeState string

const (
	StateIdle     NodeState = "idle"     // in no mesh, or in one without sharing
	StateJoining  NodeState = "joining"  // joining a mesh
	StateSharing  NodeState = "sharing"  // offering memory as a worker
	StateServing  NodeState = "serving"  // serving a model (alone, split or federated)
	StateStopping NodeState = "stopping" // shutting down
	StateError    NodeState = "error"    // something needs the user's attention
)

// Severity orders warnings.
type Severity string

const (
	SeverityInfo    Severity = "info"
	SeverityWarning Severity = "warning"
	SeverityError   Severity = "error"
)

// Warning is health a person can read: the tray and dashboard render these,
// never log text.
type Warning struct {
	Code     string   `json:"code"` // stable, e.g. "llama-not-found"
	Severity Severity `json:"severity"`
	Message  string   `json:"message"`
}

// Peer is another node of the mesh as this node sees it.
type Peer struct {
	ID            string    `json:"peer_id"`
	Name          string    `json:"name"`
	Version       string    `json:"version"`
	Mode          ShareMode `json:"mode"`
	MemoryOffered uint64    `json:"memory_offered"`
	// LendTo are the peer ids of the members its shard worker serves;
	// empty: every member.
	LendTo     []string `json:"lend_to,omitempty"`
	Models     []string `json:"models,omitempty"`
	InFlight   int      `json:"in_flight"`
	Online     bool     `json:"online"`
	LastSeenMS int64    `json:"last_seen_ms"` // milliseconds since the last heartbeat
	RTTMS      float64  `json:"rtt_ms"`
	// MinRTTMS is the least of the last few round trips, which splits
	// judge the peer by: a busy moment's queueing does not count.
	MinRTTMS float64 `json:"rtt_min_ms"`
	// Conn says how this node reaches the peer: "direct", "hole-punched",
	// "relayed", "relay-lost", or "" (no connection of its own: through
	// other members only). Transport is that connection's, e.g. "tcp".
	Conn      string `json:"conn"`
	Transport string `json:"transport,omitempty"`
	// OS is the peer's operating system, in Go's words ("linux",
	// "windows", "darwin").
	OS string `json:"os,omitempty"`
	// RPCRefused is what this node's RPC gate refused of the peer: a
	// member that sent its worker what no inference needs.
	RPCRefused *RPCRefusal `json:"rpc_refused,omitempty"`
	Hardware   any         `json:"hardware,omitempty"`
	Services   any         `json:"services,omitempty"`
	Engine     *PeerEngine `json:"engine,omitempty"`
	// Devices are what the node lends, device by device, in the order
	// its RPC worker exposes them.
	Devices []DeviceInfo `json:"devices,omitempty"`
	// Files are the model files it lets peers copy.
	Files []OfferedFile `json:"files,omitempty"`
	// Head lists the sha256 of the model files it loads as a split's
	// head; Seeded those its worker's tensor cache holds.
	Head   []string `json:"head,omitempty"`
	Seeded []string `json:"seeded,omitempty"`
	// NoPeerLoads: it shares as a server but loads none of the models on
	// its disk for members' requests (--allow-peer-loads=false).
	NoPeerLoads bool `json:"no_peer_loads,omitempty"`
}

// EventKind says what an Event is about.
type EventKind string

const (
	EventStatus     EventKind = "status"      // Status changed; read it again
	EventPeerJoined EventKind = "peer-joined" // Peer is set
	EventPeerLost   EventKind = "peer-lost"   // Peer is set
	EventModelReady EventKind = "model-ready" // Message names the model
	EventJoined     EventKind = "joined"      // this node joined a mesh
	EventRequest    EventKind = "request"     // a request was served
	EventWarning    EventKind = "warning"     // Warning is set
)

// Event is something that happened to the node.
type Event struct {
	Kind    EventKind `json:"kind"`
	Time    time.Time `json:"time"`
	Message string    `json:"message,omitempty"`
	Peer    *Peer     `json:"peer,omitempty"`
	Warning *Warning  `json:"warning,omitempty"`
}

// Request is one request served through this node's API.
type Request struct {
	Time     time.Time     `json:"time"`
	Model    string        `json:"model"`
	Node     string        `json:"node"` // who served it
	Status   int           `json:"status"`
	Duration time.Duration `json:"duration_ns"`
}

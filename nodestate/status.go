package nodestate

import (
	"time"

	"github.com/potluck-gpu/potluck/engine"
	"github.com/potluck-gpu/potluck/hw"
)

// DeviceInfo is one device of a node: what it is, what it lends and how
// fast it decodes. Nodes publish theirs in the mesh, in the order their RPC
// worker exposes them.
type DeviceInfo struct {
	Name        string       `json:"name"` // llama.cpp's name on the node: "CUDA0", "Vulkan0", "CPU"
	Backend     string       `json:"backend"`
	Description string       `json:"description,omitempty"`
	TotalBytes  uint64       `json:"total_bytes"`
	Offer       uint64       `json:"offer"` // bytes it lends
	Speed       engine.Speed `json:"speed"`
	// Unused is set on a device the user left out (--device, or the
	// tray's Devices menu); such a device is only listed.
	Unused bool `json:"unused,omitempty"`
}

// Provisioning is llama.cpp being fetched, for the status, the tray and
// the web page: "Getting llama.cpp 0.7.0 (Vulkan, 48 MB)…".
type Provisioning struct {
	Version string `json:"version"`
	Backend string `json:"backend,omitempty"`
	// For is why: "this node", or the peer whose split needs it.
	For       string `json:"for"`
	Status    string `json:"status"`
	Total     int64  `json:"total,omitempty"`     // bytes to download
	Completed int64  `json:"completed,omitempty"` // bytes downloaded
	Error     string `json:"error,omitempty"`     // the last attempt's failure
}

// Status is the document behind GET /api/status.
type Status struct {
	Name    string    `json:"name"`
	Version string    `json:"version"`
	UptimeS int64     `json:"uptime_s"`
	State   NodeState `json:"state"`
	API     string    `json:"api"` // the OpenAI base URL, e.g. http://127.0.0.1:8080/v1

	Share         ShareMode `json:"share"`
	MemoryOffered uint64    `json:"memory_offered"`
	// ShareAs is the mode sharing turns on in, "worker" or "server": the
	// one in force while shared, the one chosen last while not.
	ShareAs ShareMode `json:"share_as"`
	// ShareMemory is the memory chosen to offer, in bytes; 0: Potluck
	// decides.
	ShareMemory uint64 `json:"share_memory,omitempty"`
	// ShareLimit is the tokens a day each peer may use of this node's
	// model (0: no limit).
	ShareLimit uint64 `json:"share_limit,omitempty"`
	// LendTo are the members (names or peer ids) the shard worker
	// serves, as chosen; empty: every member.
	LendTo []string `json:"lend_to,omitempty"`

	InMesh bool `json:"in_mesh"`
	// Network is the fingerprint of the network's token: two nodes show
	// the same exactly when they hold the same token.
	Network     string   `json:"network,omitempty"`
	PeerID      string   `json:"peer_id,omitempty"`
	P2PAddrs    []string `json:"p2p_addrs,omitempty"`
	PeersOnline int      `json:"peers_online"`
	// Reachability says whether members across the internet can dial
	// this node directly: "public", "private" (behind a NAT: reached
	// through relays and hole punching) or "unknown" (not yet asked).
	Reachability string `json:"reachability,omitempty"`
	// MeshTraffic is what the mesh carried since the node started.
	MeshTraffic *MeshTraffic `json:"mesh_traffic,omitempty"`

	Engine EngineStatus `json:"engine"`
	// Devices are this node's devices and what each offers; those the
	// user left out are marked unused.
	Devices []DeviceInfo `json:"devices"`
	// DeviceChoice is the user's choice of devices; empty: automatic.
	DeviceChoice []string     `json:"device_choice,omitempty"`
	Model        *ModelStatus `json:"model,omitempty"`
	// Loaded are the models loaded here on request, beside Model.
	Loaded   []LoadedModel `json:"loaded,omitempty"`
	Worker   *WorkerState  `json:"worker,omitempty"`
	Hardware *hw.Report    `json:"hardware,omitempty"`
	Offer    *hw.Offer     `json:"offer,omitempty"`
	InFlight int           `json:"in_flight"`
	Warnings []Warning     `json:"warnings,omitempty"`
}

// EngineStatus describes llama.cpp on this node.
type EngineStatus struct {
	Available   bool           `json:"available"`
	Error       string         `json:"error,omitempty"`
	Runtime     engine.Runtime `json:"runtime"`
	Server      string         `json:"server_version,omitempty"`
	Build       string         `json:"build,omitempty"`
	RPCProtocol string         `json:"rpc_protocol,omitempty"`
	// Release is the llama.cpp release running, e.g. "0.7.0"; Wanted the
	// one this Potluck runs everywhere.
	Release string `json:"release,omitempty"`
	Wanted  string `json:"wanted_release"`
	// Installed lists the builds provisioned on this machine, e.g.
	// "0.7.0 (Debian)", "0.5.0 (cpu)": at most two versions.
	Installed []string `json:"installed,omitempty"`
	// Provisioning is llama.cpp being fetched, with its progress.
	Provisioning *Provisioning `json:"provisioning,omitempty"`
}

// LoadedModel is a model loaded on request, and until when.
type LoadedModel struct {
	Name     string `json:"name"`
	Ready    bool   `json:"ready"`
	Detail   string `json:"detail,omitempty"` // what its load waits for
	InFlight int    `json:"in_flight"`
	Bytes    uint64 `json:"bytes"` // memory it takes here
	// ExpiresAt is when it unloads if no request comes; nil: it stays.
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// ModelStatus describes the model this node serves.
type ModelStatus struct {
	ID     string        `json:"id"`
	Path   string        `json:"path"`
	Ready  bool          `json:"ready"`
	State  engine.Status `json:"state"`
	Detail string        `json:"detail,omitempty"` // e.g. why it waits
	Nodes  int           `json:"nodes"`            // machines holding it
	// Holders is the current plan: which device of which machine holds
	// how many layers.
	Holders []Holder `json:"holders,omitempty"`
	// TokensPerSecond is the plan's predicted decoding speed.
	TokensPerSecond float64 `json:"tokens_per_second,omitempty"`
	// Excluded names the workers left out of the plan, with the reason.
	Excluded []string `json:"excluded,omitempty"`
	// Draft is the draft model decoding runs with, if any; NoDraft
	// says why there is none where one was looked for.
	Draft   *DraftStatus `json:"draft,omitempty"`
	NoDraft string       `json:"no_draft,omitempty"`
}

// DraftStatus is a draft model at work (speculative decoding).
type DraftStatus struct {
	Model string `json:"model"`
	// Lookup is llama.cpp's draft-free speculation (e.g. "ngram-simple")
	// when no draft model runs.
	Lookup string `json:"lookup,omitempty"`
	Device string `json:"device"` // the head's device it runs on
	Max    int    `json:"max"`    // tokens drafted at a time
	// TokensPerSecond is the model's predicted speed with the draft
	// (ModelStatus.TokensPerSecond is without).
	TokensPerSecond float64 `json:"tokens_per_second"`
	// What the answers so far measured: the share of drafted tokens the
	// model accepted, and the speed; 0 before any.
	Drafted                 int     `json:"drafted"`
	Acceptance              float64 `json:"acceptance"`
	MeasuredTokensPerSecond float64 `json:"measured_tokens_per_second,omitempty"`
}

// Holder is one device's part of a split model.
type Holder struct {
	Name   string `json:"name"`   // the machine
	Device string `json:"device"` // its device, e.g. "CUDA0", "CPU"
	Local  bool   `json:"local"`
	Layers int    `json:"layers"`
	Bytes  uint64 `json:"bytes"`
	// Share is its part of the time per token, 0 to 1.
	Share float64 `json:"share"`
}

// WorkerState describes this node's RPC worker.
type WorkerState struct {
	Addr  string        `json:"addr"`
	State engine.Status `json:"state"`
	// Release is the llama.cpp release the worker runs, and Matches the
	// head whose version it runs when that is not this node's own.
	Release string `json:"release,omitempty"`
	Matches string `json:"matches,omitempty"`
}

// MeshTraffic is what the mesh carried since the node started, in bytes:
// the payload of its streams (gossip, pings, tunnels...), in all and by
// libp2p protocol. Transport overhead and LAN discovery are not counted.
type MeshTraffic struct {
	In         int64                `json:"in_bytes"`
	Out        int64                `json:"out_bytes"`
	ByProtocol map[string]ByteCount `json:"by_protocol,omitempty"`
}

// ByteCount is bytes in and out.
type ByteCount struct {
	In  int64 `json:"in_bytes"`
	Out int64 `json:"out_bytes"`
}

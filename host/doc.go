// Package host serves a model: it plans which machines of the pool hold
// which layers, runs llama-server with the chosen workers' tunnels,
// re-plans when workers come and go or one dies, and stands in front of
// llama-server with a proxy that checks each member's daily share and
// records what was served in the accounts.
//
// What it needs of the network comes through Mesh, and what it needs of
// the node it runs in through Node: it holds no pointer back to either.
package host

import (
	"context"
	"log/slog"

	"github.com/potluck-gpu/potluck/engine"
	"github.com/potluck-gpu/potluck/hub"
	"github.com/potluck-gpu/potluck/ledger"
	"github.com/potluck-gpu/potluck/library"
	"github.com/potluck-gpu/potluck/nodestate"
	"github.com/potluck-gpu/potluck/speculate"
)

// DefaultRPCService is the mesh service name of a llama.cpp RPC worker.
const DefaultRPCService = "llama-rpc"

// Config is how a host serves.
type Config struct {
	Name       string           // this machine, as plans name it
	CtxSize    int              // llama-server's context
	Threads    int              // llama-server's CPU threads; 0: its default
	Split      engine.SplitMode // fit or all
	LogFile    string           // llama-server's log; "": none
	Log        *slog.Logger
	Ledger     *ledger.Ledger // the accounts; nil: none kept
	RPCService string         // the workers' service; "": DefaultRPCService
	// Draft is the draft model for speculative decoding: "auto" (or
	// ""), "none", or a model's name or path (speculate.Pick).
	Draft string
	// DraftMax and DraftMin are the most and fewest tokens drafted at a
	// time; 0: llama.cpp's defaults.
	DraftMax int
	DraftMin int
}

// Mesh is the network as a host sees it. In no network, Self is "", Peers
// is empty and Tunnel fails.
type Mesh interface {
	// Self is this node's peer id.
	Self() string
	// Peers are the other members, as the node shows them.
	Peers() []nodestate.Peer
	// PeerOfConn names the member whose tunnel a local connection (its
	// remote address, as the proxy sees it) came through.
	PeerOfConn(remoteAddr string) (peerID string, ok bool)
	// Tunnel opens a local address that reaches a member's service.
	Tunnel(ctx context.Context, peerID, service string) (addr string, err error)
	// CloseTunnels closes the tunnels to a member, e.g. one that died.
	CloseTunnels(peerID string)
	// TunnelSent is the bytes sent so far to the members' service.
	TunnelSent(peerIDs []string, service string) uint64
}

// Node is what a host asks of the node it runs in.
type Node interface {
	// Runtime is the llama.cpp the node runs.
	Runtime() (engine.Runtime, engine.Versions, error)
	// Devices are the node's own devices for a plan's head, and the
	// user's choice of them (none: automatic).
	Devices() (head []nodestate.DeviceInfo, choice []string)
	// Pull gets a model onto this machine, with progress.
	Pull(ctx context.Context, ref string, progress func(hub.Progress)) (library.Model, error)
	// ModelFiles are the sha256 and total size of a model's files.
	ModelFiles(ctx context.Context, path string) (shas []string, size uint64)
	// Models are the models of the library, candidate drafts.
	Models() []speculate.Model
	// Embeddings says whether the model (as asked for, or its alias)
	// serves embeddings as chosen.
	Embeddings(name, alias string) bool
	// ShareLimit is the tokens a day each member may use; 0: no limit.
	ShareLimit() uint64

	// Warn and ClearWarning keep the user's warnings; Changed says the
	// host's status changed; Ready that the model is ready to serve;
	// Announce that what the node publishes changed (the model's files,
	// for workers that hold them).
	Warn(nodestate.Warning)
	ClearWarning(code string)
	Changed()
	Ready(alias string)
	Announce()
}

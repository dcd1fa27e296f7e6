package tray

import (
	"context"

	"github.com/potluck-gpu/potluck/hub"
	"github.com/potluck-gpu/potluck/library"
	"github.com/potluck-gpu/potluck/nodestate"
)

// Controller is how a user interface drives a node: the tray and the node
// API call these methods and render Status, Peers and Events. *Node
// implements it; so does the tray tests' fake.
type Controller interface {
	// Status is a snapshot of the node.
	Status() nodestate.Status
	// Peers lists the nodes of the mesh this node is in, itself excluded.
	Peers() []nodestate.Peer
	// Join joins the mesh of an invite token, leaving any other first.
	// A bad token is an *InvalidTokenError whose message a person can read.
	Join(ctx context.Context, token string) error
	// Leave leaves the mesh; sharing stops.
	Leave(ctx context.Context) error
	// Share sets how this machine is shared. ShareOff stops sharing. On a
	// node in no mesh yet, sharing starts a new mesh with a fresh token.
	// memory 0 means the default offer.
	Share(ctx context.Context, mode nodestate.ShareMode, memory uint64) error
	// SetShareAs chooses the mode sharing turns on in (worker or
	// server); a computer shared in the other mode switches to it.
	// Status's ShareAs says the choice, ShareMemory the memory chosen,
	// which Share keeps also when it turns sharing off.
	SetShareAs(ctx context.Context, mode nodestate.ShareMode) error
	// SetDevices chooses which of llama.cpp's devices (names as Status's
	// Devices list them, "CPU" included) this node serves with and lends;
	// none means every device that makes a plan faster.
	SetDevices(ctx context.Context, devices []string) error
	// SetShareLimit sets the tokens a day each peer may use of this
	// node's model; 0: no limit.
	SetShareLimit(ctx context.Context, tokens uint64) error
	// SetLendTo chooses the members (names or peer ids) this machine's
	// shard worker serves; none: every member.
	SetLendTo(ctx context.Context, who []string) error
	// InviteToken returns the token of the current mesh, for inviting
	// friends. It is an error when the node is in no mesh.
	InviteToken() (string, error)
	// Subscribe delivers events until cancel is called. A slow reader
	// misses events rather than blocking the node.
	Subscribe() (events <-chan nodestate.Event, cancel func())
	// Members lists the members of the network: name, peer id, first and
	// last seen, and whether they were removed or have yet to move to the
	// network's new token.
	Members() nodestate.MembersView
	// Usage is the pool's accounts: what this machine gave to and used
	// from each peer.
	Usage() nodestate.Usage
	// Library lists the models on this machine.
	Library() nodestate.LibraryView
	// Pull makes a model available here: one in the library as it is,
	// otherwise a Hugging Face reference downloaded, with progress.
	Pull(ctx context.Context, ref string, progress func(hub.Progress)) (library.Model, error)
	// Serve serves the model name (a library name, path or reference,
	// pulled first) in place of the one served; "" serves none.
	Serve(ctx context.Context, name string) error
	// Recent returns the latest requests served through this node's API.
	Recent() []nodestate.Request
	// Logs returns the node's last log lines.
	Logs(n int) []string
}

// EmbeddingsChooser lets a user interface choose, model by model, to serve
// embeddings from a chat model too. *Node implements it.
type EmbeddingsChooser interface {
	// SetEmbeddings turns embeddings on or off for the model name (a
	// library name, path or reference) the next time it is served, and
	// now if it is being served. The node keeps the choice.
	SetEmbeddings(ctx context.Context, name string, on bool) error
}

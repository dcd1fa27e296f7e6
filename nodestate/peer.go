package nodestate

import (
	"time"

	"github.com/potluck-gpu/potluck/library"
)

// RPCRefusal is what the gate refused of one member.
type RPCRefusal struct {
	Count  int       `json:"count"`
	Reason string    `json:"reason"` // the last one's, a word of rpcgate's
	Detail string    `json:"detail"`
	Time   time.Time `json:"time"`
}

// PeerEngine is a peer's llama.cpp, as it announces it.
type PeerEngine struct {
	// Release and RPCProtocol are those of the llama.cpp the node runs
	// itself, e.g. "0.7.0" and "8.0.0".
	Release     string `json:"release,omitempty"`
	Server      string `json:"server,omitempty"`
	RPCProtocol string `json:"rpc_protocol,omitempty"`
	OS          string `json:"os"`
	// Worker is the release its RPC worker runs when it lends with
	// another llama.cpp than its own, to match a head.
	Worker string `json:"worker,omitempty"`
}

// OfferedFile is a model file a sharing node lets its peers copy.
type OfferedFile = library.PeerFile

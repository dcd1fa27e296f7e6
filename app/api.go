package app

import (
	"context"
	"strings"

	"github.com/potluck-gpu/potluck/nodestate"
	"github.com/potluck-gpu/potluck/server"
)

// apiNode is the Node as the node API drives it: the Node's own methods,
// and these three where the API speaks in its own terms.
type apiNode struct{ *Node }

var _ server.Node = apiNode{}

func (a apiNode) Counters() server.Counters { return a.counters() }

// Serve sets the model's embeddings first, when asked: the model then
// starts, or restarts, as chosen.
func (a apiNode) Serve(ctx context.Context, model string, embeddings *bool) error {
	if embeddings != nil && strings.TrimSpace(model) != "" {
		if err := a.SetEmbeddings(ctx, model, *embeddings); err != nil {
			return err
		}
	}
	return a.Node.Serve(ctx, model)
}

func (a apiNode) Share(ctx context.Context, mode, memory string) error {
	m, ok := nodestate.ParseShareMode(mode)
	if !ok {
		return &nodestate.InputError{Field: "mode", Msg: `want "off", "worker" or "server"`, Value: mode}
	}
	mem, err := parseMemory(memory)
	if err != nil {
		return err
	}
	return a.Node.Share(ctx, m, mem)
}

package app

import (
	"context"
	"errors"
	"strings"

	"github.com/potluck-gpu/potluck/host"
	"github.com/potluck-gpu/potluck/llama"
	"github.com/potluck-gpu/potluck/nodestate"
	"github.com/potluck-gpu/potluck/settings"
)

// modelHost is the host of the model this node serves; nil when it serves
// none.
func (n *Node) modelHost() *host.Host {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.host
}

// Serve makes this node serve the model name (a library name, a GGUF path,
// or a Hugging Face reference, pulled first) in place of the one it serves;
// "" serves none. The choice is kept for the next start, unless --model
// says otherwise then.
func (n *Node) Serve(ctx context.Context, name string) error {
	name = strings.TrimSpace(name)
	if name != "" {
		if err := n.checkModelName(name); err != nil {
			return err
		}
		if err := n.llama.Err(); err != nil && !errors.Is(err, llama.ErrFetching) {
			return err
		}
	}
	n.serveMu.Lock()
	defer n.serveMu.Unlock()
	if old := n.modelHost(); old != nil && old.Name() == name {
		return nil
	}
	return n.switchHost(name)
}

// switchHost serves name in place of the model served, restarting it when
// it is the same. The caller holds serveMu.
func (n *Node) switchHost(name string) error {
	n.mu.Lock()
	old, runCtx := n.host, n.runCtx
	n.mu.Unlock()
	if old != nil {
		// Not under opMu: a host that just got ready takes it.
		old.Stop()
	}
	var h *host.Host
	if name != "" {
		h = n.newHost(name)
	}
	n.mu.Lock()
	n.host = h
	n.mu.Unlock()
	n.pin(h)
	n.modify(func(s *settings.Settings) { s.Model = name })
	n.clearWarning("model")
	n.clearWarning("model-fit")
	n.clearWarning("model-failed")
	if h != nil && runCtx != nil {
		h.Start(runCtx)
	}
	n.opMu.Lock()
	err := n.reexpose()
	n.opMu.Unlock()
	n.publishInfo()
	n.events.publish(nodestate.Event{Kind: nodestate.EventStatus})
	if name == "" {
		n.log.Info("serving no model")
	} else {
		n.log.Info("serving a model", "model", name)
	}
	return err
}

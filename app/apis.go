package app

import (
	"context"
	"slices"
	"strings"

	"github.com/potluck-gpu/potluck/engine"
	"github.com/potluck-gpu/potluck/nodestate"
	"github.com/potluck-gpu/potluck/settings"
	"github.com/potluck-gpu/potluck/speculate"
)

// What each served model does (chat, embeddings, rerank), here and on the
// peers: the API lists it, and routes embeddings and rerank requests to
// the backends that serve them.

// embeddingsOn says whether the model asked for as name, served as
// alias, serves embeddings too: --embeddings, or the user's choice.
func (n *Node) embeddingsOn(name, alias string) bool {
	if n.cfg.Embeddings {
		return true
	}
	chosen := n.settings.Get().Embeddings
	return slices.Contains(chosen, name) || (alias != "" && slices.Contains(chosen, alias))
}

// SetEmbeddings implements EmbeddingsChooser. A model being served whose
// llama-server would start otherwise now is restarted.
func (n *Node) SetEmbeddings(ctx context.Context, name string, on bool) error {
	name = strings.TrimSpace(name)
	if name == "" {
		return &nodestate.InputError{Field: "model", Msg: "say which model"}
	}
	n.serveMu.Lock()
	defer n.serveMu.Unlock()
	h := n.modelHost()
	var before engine.Serving
	if h != nil {
		before = h.Serving()
	}
	if slices.Contains(n.settings.Get().Embeddings, name) == on {
		return nil
	}
	err := n.settings.Modify(func(s *settings.Settings) {
		if on {
			s.Embeddings = append(s.Embeddings, name)
		} else {
			s.Embeddings = slices.DeleteFunc(s.Embeddings, func(s string) bool { return s == name })
		}
	})
	if err != nil {
		return err
	}
	if h == nil {
		return nil
	}
	if path, alias := h.Ident(); h.Name() != name && alias != name && path != name {
		return nil
	}
	if after := h.Serving(); after.Embeddings == before.Embeddings && after.Pooling == before.Pooling {
		return nil
	}
	n.log.Info("restarting the model to change its embeddings", "model", name, "embeddings", on)
	return n.switchHost(h.Name())
}

// draftChoice is the draft model the node's models decode with: --draft,
// else the choice saved from a user interface, else auto.
func (n *Node) draftChoice() string {
	if n.cfg.Draft != "" {
		return n.cfg.Draft
	}
	if d := n.settings.Get().Draft; d != "" {
		return d
	}
	return speculate.Auto
}

// SetDraft implements DraftChooser: it keeps the choice of draft model
// ("auto", "none", "ngram" or a model's name) and restarts the model served, if
// the choice changes how it runs.
func (n *Node) SetDraft(ctx context.Context, choice string) error {
	choice = strings.TrimSpace(choice)
	_, lookup := speculate.Lookup(choice)
	bad := speculate.Check(choice)
	switch {
	case choice == "":
		return &nodestate.InputError{Field: "draft", Msg: `say "auto", "none", "ngram" or a model's name`}
	case n.cfg.Draft != "":
		return &nodestate.InputError{Field: "draft", Msg: "the command line chose the draft (--draft " + n.cfg.Draft + "); start Potluck without --draft to choose it here", Value: choice}
	case bad != nil:
		return &nodestate.InputError{Field: "draft", Msg: bad.Error(), Value: choice}
	case choice != speculate.Auto && choice != speculate.None && !lookup:
		if _, ok := n.lib.Find(choice); !ok {
			return &nodestate.InputError{Field: "draft", Msg: "no model of that name in the library (see `potluck models`)", Value: choice}
		}
	}
	n.serveMu.Lock()
	defer n.serveMu.Unlock()
	if n.draftChoice() == choice {
		return nil
	}
	if err := n.settings.Modify(func(s *settings.Settings) { s.Draft = choice }); err != nil {
		return err
	}
	h := n.modelHost()
	if h == nil {
		return nil
	}
	n.log.Info("restarting the model to change its draft", "model", h.Name(), "draft", choice)
	return n.switchHost(h.Name())
}

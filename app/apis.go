package app

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/potluck-gpu/potluck/engine"
	"github.com/potluck-gpu/potluck/host"
	"github.com/potluck-gpu/potluck/nodestate"
	"github.com/potluck-gpu/potluck/server"
	"github.com/potluck-gpu/potluck/settings"
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

// peerModels caches what peers' models do, by peer id: a peer's model
// proxy answers host.ModelInfoPath.
type peerModels struct {
	mu sync.Mutex
	m  map[string]*peerModel
}

type peerModel struct {
	model   server.Model
	fetched time.Time // when it answered; zero: never
	asked   time.Time // when it was last asked
	busy    bool
}

// peerModelsFresh is how long what a peer said is trusted before it is
// asked again (in the background: until then the old answer stands), and
// peerModelsRetry how soon a peer that did not answer is asked again.
const (
	peerModelsFresh = 30 * time.Second
	peerModelsRetry = 5 * time.Second
)

// peerModel is what peer p said of its model id; it asks again in the
// background when that is old, or not known yet.
func (n *Node) peerModel(p nodestate.Peer, id string) (server.Model, bool) {
	c := &n.peerModels
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]*peerModel{}
	}
	e := c.m[p.ID]
	if e == nil {
		e = &peerModel{}
		c.m[p.ID] = e
	}
	known := !e.fetched.IsZero() && e.model.ID == id
	wait := peerModelsFresh
	if !known {
		wait = peerModelsRetry
	}
	if !e.busy && time.Since(e.asked) > wait {
		e.busy, e.asked = true, time.Now()
		go n.fetchPeerModel(p)
	}
	return e.model, known
}

// fetchPeerModel asks peer p's model proxy what its model does.
func (n *Node) fetchPeerModel(p nodestate.Peer) {
	var m server.Model
	err := n.askPeerModel(p.ID, &m)
	c := &n.peerModels
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.m[p.ID]
	if e == nil {
		return
	}
	e.busy = false
	if err != nil {
		n.log.Debug("what a peer's model does is not known", "peer", p.Name, "err", err)
		return
	}
	e.model, e.fetched = m, time.Now()
}

func (n *Node) askPeerModel(peerID string, m *server.Model) error {
	s := n.currentMesh()
	if s == nil {
		return errNoMesh
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	addr, err := s.tunnel(ctx, peerID, serviceOpenAI)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+host.ModelInfoPath, nil)
	if err != nil {
		return err
	}
	resp, err := n.swarmClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s (an older Potluck)", host.ModelInfoPath, resp.Status)
	}
	return json.NewDecoder(http.MaxBytesReader(nil, resp.Body, 64<<10)).Decode(m)
}

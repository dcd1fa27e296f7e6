package app

import (
	"context"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/potluck-gpu/potluck/hub"
	"github.com/potluck-gpu/potluck/library"
	"github.com/potluck-gpu/potluck/nodestate"
)

// Library lists the models on this machine.
func (n *Node) Library() nodestate.LibraryView {
	models, warnings := n.lib.List()
	v := nodestate.LibraryView{Models: models, Warnings: warnings, Store: library.StoreDir(n.cfg.DataDir)}
	if v.Models == nil {
		v.Models = []library.Model{}
	}
	if h := n.modelHost(); h != nil {
		_, v.Serving = h.Ident()
	}
	n.mu.Lock()
	v.Embeddings = n.settings.Get().Embeddings
	v.Draft, v.DraftFixed = n.draftChoice(), n.cfg.Draft != ""
	n.mu.Unlock()
	remote, holders := library.PeerModels(n.peerOffers())
	byName := map[string]int{}
	for _, m := range remote {
		if _, ok := library.Match(v.Models, m.Name); ok {
			continue // here already
		}
		i, ok := byName[m.Name]
		if !ok {
			i = len(v.Peers)
			byName[m.Name] = i
			v.Peers = append(v.Peers, nodestate.PeerModel{Name: m.Name, Size: m.Size})
		}
		for _, p := range holders[m.Files[0].SHA256] {
			if !slices.Contains(v.Peers[i].On, p.Name) {
				v.Peers[i].On = append(v.Peers[i].On, p.Name)
			}
		}
	}
	return v
}

// findModel resolves name to a file on this machine: a path to a GGUF
// file, or a library name. alias is the name the model is served under.
func (n *Node) findModel(name string) (path, alias string, ok bool) {
	if fi, err := os.Stat(name); err == nil && !fi.IsDir() {
		return name, ModelAlias(name), true
	}
	if m, ok := n.lib.Find(name); ok {
		return m.Path, m.Name, true
	}
	return "", "", false
}

// checkModelName fails early for a name that cannot be resolved, here or
// by a pull.
func (n *Node) checkModelName(name string) error {
	if _, _, ok := n.findModel(name); ok || hub.LooksLikeRef(name) {
		return nil
	}
	if n.inNetwork() && !strings.ContainsAny(name, `/\`) && !strings.HasSuffix(name, ".gguf") {
		return nil // a name a peer may have, such as Ollama's "llama3.2:3b"
	}
	return &library.NotFoundError{Name: name}
}

// inNetwork says whether the node is, or will be, in a network.
func (n *Node) inNetwork() bool {
	if n.currentMesh() != nil || n.cfg.Token != "" {
		return true
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.settings.Get().Token != ""
}

// Pull makes the model ref names available on this machine: a model
// already in the library is returned as it is, with no network call; one
// that peers have is copied from all of them at once; otherwise ref, a
// Hugging Face reference, is downloaded into the store (see
// library.Puller). progress, if not nil, follows the copy.
func (n *Node) Pull(ctx context.Context, ref string, progress func(hub.Progress)) (library.Model, error) {
	return n.puller.Pull(ctx, ref, progress)
}

// newPuller pulls from the peers that have a model, then from the hub.
func (n *Node) newPuller() *library.Puller {
	store := library.StoreDir(n.cfg.DataDir)
	peers := &library.Peers{Lib: n.lib, Store: store, Client: n.swarmClient, Online: n.peerOffers, Dial: n.dialSwarm, Log: n.log}
	return &library.Puller{
		Lib:     n.lib,
		Sources: []library.Source{peers, library.Hub{Lib: n.lib, Client: n.hub, Store: store}},
		Log:     n.log,
		Pulled: func(m library.Model, took time.Duration) {
			n.log.Info("pulled a model", "model", m.Name, "bytes", m.Size, "took", took.Round(time.Millisecond))
			n.events.publish(nodestate.Event{Kind: nodestate.EventStatus, Message: "pulled " + m.Name})
			select {
			case n.hashNow <- struct{}{}:
			default:
			}
		},
	}
}

// hashModels computes missing checksums in the background now and then:
// at start, and after each pull.
func (n *Node) hashModels(ctx context.Context) error {
	t := time.NewTicker(10 * time.Minute)
	defer t.Stop()
	for {
		n.lib.HashInBackground(ctx)
		n.publishInfo() // newly hashed files can be copied by peers
		n.maybeSeed()   // and a head may be waiting for one of them
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-n.hashNow:
		}
	}
}

package app

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
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
	n.mu.Unlock()
	remote, holders := n.peerFiles()
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
// Hugging Face reference, is downloaded into the store. progress, if not
// nil, follows the copy.
func (n *Node) Pull(ctx context.Context, ref string, progress func(hub.Progress)) (library.Model, error) {
	if m, ok := n.lib.Find(ref); ok {
		if progress != nil {
			progress(hub.Progress{Status: "success", File: m.Name, From: "here"})
		}
		return m, nil
	}
	unlock := n.pulls.lock(ref)
	defer unlock()
	if m, ok := n.lib.Find(ref); ok { // another pull of it just ended
		if progress != nil {
			progress(hub.Progress{Status: "success", File: m.Name, From: "here"})
		}
		return m, nil
	}
	start := time.Now()
	if progress == nil {
		progress = func(hub.Progress) {}
	}
	m, fromPeers, err := n.pullFromPeers(ctx, ref, progress)
	switch {
	case fromPeers && err == nil:
		progress(hub.Progress{Status: "success", File: m.Name})
	case fromPeers && ctx.Err() != nil:
		return m, ctx.Err()
	case fromPeers && !hub.LooksLikeRef(ref):
		return m, fmt.Errorf("copying %s from peers: %w", ref, err)
	default:
		if fromPeers {
			n.log.Warn("peers could not send the model; trying Hugging Face", "model", ref, "err", err)
			progress(hub.Progress{Status: "peers could not send it (" + err.Error() + "): trying Hugging Face"})
		}
		if m, err = n.lib.Get(ctx, n.hub, ref, library.StoreDir(n.cfg.DataDir), progress); err != nil {
			return m, err
		}
	}
	n.log.Info("pulled a model", "model", m.Name, "bytes", m.Size, "took", time.Since(start).Round(time.Millisecond))
	n.events.publish(nodestate.Event{Kind: nodestate.EventStatus, Message: "pulled " + m.Name})
	select {
	case n.hashNow <- struct{}{}:
	default:
	}
	return m, nil
}

// keyedMutex serializes work on the same key: two pulls of one file must
// not write the same partial file.
type keyedMutex struct {
	mu    sync.Mutex
	locks map[string]*keyedLock
}

type keyedLock struct {
	sync.Mutex
	users int
}

func (k *keyedMutex) lock(key string) (unlock func()) {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = map[string]*keyedLock{}
	}
	l := k.locks[key]
	if l == nil {
		l = &keyedLock{}
		k.locks[key] = l
	}
	l.users++
	k.mu.Unlock()
	l.Lock()
	return func() {
		l.Unlock()
		k.mu.Lock()
		if l.users--; l.users == 0 {
			delete(k.locks, key)
		}
		k.mu.Unlock()
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

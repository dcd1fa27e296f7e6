package app

import (
	"context"
	"os"
	"sync"
	"time"

	"github.com/potluck-gpu/potluck/hub"
	"github.com/potluck-gpu/potluck/library"
)

// LibraryView is the document behind GET /api/models: the models on this
// machine, and the places that could not be read.
type LibraryView struct {
	Models   []library.Model   `json:"models"`
	Warnings []library.Warning `json:"warnings,omitempty"`
	Serving  string            `json:"serving,omitempty"` // the name of the model this node serves
	Store    string            `json:"store"`             // where pulls go
}

// Library lists the models on this machine.
func (n *Node) Library() LibraryView {
	models, warnings := n.lib.List()
	v := LibraryView{Models: models, Warnings: warnings, Store: library.StoreDir(n.cfg.DataDir)}
	if v.Models == nil {
		v.Models = []library.Model{}
	}
	if h := n.modelHost(); h != nil {
		_, v.Serving = h.ident()
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
	return &library.NotFoundError{Name: name}
}

// Pull makes the model ref names available on this machine: a model
// already in the library is returned as it is, with no network call;
// otherwise ref (a Hugging Face reference) is downloaded into the store.
// progress, if not nil, follows the download.
func (n *Node) Pull(ctx context.Context, ref string, progress func(hub.Progress)) (library.Model, error) {
	if m, ok := n.lib.Find(ref); ok {
		if progress != nil {
			progress(hub.Progress{Status: "success", File: m.Name, From: "here"})
		}
		return m, nil
	}
	unlock := n.pulls.lock(ref)
	defer unlock()
	start := time.Now()
	m, err := n.lib.Get(ctx, n.hub, ref, library.StoreDir(n.cfg.DataDir), progress)
	if err != nil {
		return m, err
	}
	n.log.Info("pulled a model", "model", m.Name, "bytes", m.Size, "took", time.Since(start).Round(time.Millisecond))
	n.events.publish(Event{Kind: EventStatus, Message: "pulled " + m.Name})
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
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-n.hashNow:
		}
	}
}

package library

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/potluck-gpu/potluck/hub"
)

// A Source is somewhere a model that is not on this machine can come from:
// the hub (Hub), or the peers of the network (Peers).
type Source interface {
	// Name says where, as a person reads it: "peers", "Hugging Face".
	Name() string
	// Has says whether the source may have the model ref names, without
	// a slow call: a peer offers it, or ref has the shape of a hub
	// reference.
	Has(ref string) bool
	// Fetch copies the model into the library and returns it as listed.
	// progress follows the copy, up to its "success".
	Fetch(ctx context.Context, ref string, progress func(hub.Progress)) (Model, error)
}

// Puller makes models available on this machine: a model in the library is
// returned as it is, with no network call; otherwise the first source that
// has it copies it. Two pulls of one reference do not run at once: they
// would write the same partial file.
type Puller struct {
	Lib *Library
	// Sources in order of preference. The last one is the last resort:
	// what it answers is the answer. One before it that fails hands over
	// to the next that has the model, and says so.
	Sources []Source
	Log     *slog.Logger // nil: no log
	// Pulled, if not nil, hears of each model copied here, and how long
	// the copy took.
	Pulled func(m Model, took time.Duration)

	locks keyedMutex
}

// Pull makes the model ref names available on this machine. progress, if
// not nil, follows the copy.
func (p *Puller) Pull(ctx context.Context, ref string, progress func(hub.Progress)) (Model, error) {
	if progress == nil {
		progress = func(hub.Progress) {}
	}
	if m, ok := p.Lib.Find(ref); ok {
		progress(hub.Progress{Status: "success", File: m.Name, From: "here"})
		return m, nil
	}
	unlock := p.locks.lock(ref)
	defer unlock()
	if m, ok := p.Lib.Find(ref); ok { // another pull of it just ended
		progress(hub.Progress{Status: "success", File: m.Name, From: "here"})
		return m, nil
	}
	start := time.Now()
	m, err := p.fetch(ctx, ref, progress)
	if err != nil {
		return m, err
	}
	if p.Pulled != nil {
		p.Pulled(m, time.Since(start))
	}
	return m, nil
}

// fetch asks the sources that have ref, in order, until one copies it.
func (p *Puller) fetch(ctx context.Context, ref string, progress func(hub.Progress)) (Model, error) {
	for i, s := range p.Sources {
		if !s.Has(ref) {
			continue
		}
		m, err := s.Fetch(ctx, ref, progress)
		if err == nil || i == len(p.Sources)-1 {
			return m, err
		}
		if ctx.Err() != nil {
			return m, ctx.Err()
		}
		next := p.next(i+1, ref)
		if next == nil {
			return m, fmt.Errorf("copying %s from %s: %w", ref, s.Name(), err)
		}
		if p.Log != nil {
			p.Log.Warn(s.Name()+" could not send the model; trying "+next.Name(), "model", ref, "err", err)
		}
		progress(hub.Progress{Status: s.Name() + " could not send it (" + err.Error() + "): trying " + next.Name()})
	}
	return Model{}, &NotFoundError{Name: ref}
}

// next is the first source from i on that has ref; nil when none has.
func (p *Puller) next(i int, ref string) Source {
	for _, s := range p.Sources[i:] {
		if s.Has(ref) {
			return s
		}
	}
	return nil
}

// Hub is the Hugging Face hub as a Source: it pulls into Store.
type Hub struct {
	Lib    *Library
	Client *hub.Client
	Store  string
}

var _ Source = Hub{}

// Name implements Source.
func (Hub) Name() string { return "Hugging Face" }

// Has implements Source: ref has the shape of a hub reference.
func (Hub) Has(ref string) bool { return hub.LooksLikeRef(ref) }

// Fetch implements Source.
func (h Hub) Fetch(ctx context.Context, ref string, progress func(hub.Progress)) (Model, error) {
	return h.Lib.Get(ctx, h.Client, ref, h.Store, progress)
}

// keyedMutex serializes work on the same key.
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

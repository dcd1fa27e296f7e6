// Package sched loads models when requests name them and unloads them when
// they have been idle for their keep-alive, as Ollama's scheduler does:
// one load however many requests ask at once, several models loaded while
// they fit, and the least recently used idle one unloaded to make room. A
// model serving a request is never unloaded under it.
//
// The model a node was told to serve (--model, the tray's choice) is
// pinned: it counts against the room, and is never unloaded here.
package sched

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/potluck-gpu/potluck/internal/size"
	"github.com/potluck-gpu/potluck/nodestate"
)

// Defaults, as Ollama's.
const (
	DefaultKeepAlive = 5 * time.Minute
	DefaultMaxLoaded = 3
)

// Forever is a keep-alive that never runs out (Ollama's -1).
const Forever time.Duration = -1

// Model is a model the scheduler loads and unloads: a host.Host.
type Model interface {
	// Start loads and serves the model until ctx ends or Stop.
	Start(ctx context.Context)
	// Stop unloads it, and returns once its llama-server is gone.
	Stop()
	// InFlight is how many requests it is serving now.
	InFlight() int
	// LocalAddr is where it answers once ready; "" before.
	LocalAddr() string
	// Status says how its load goes.
	Status() *nodestate.ModelStatus
	// Footprint is the memory it takes, or will, on this machine.
	Footprint() uint64
}

// Config is how a Scheduler decides.
type Config struct {
	// KeepAlive is how long a model stays loaded after its last request
	// when the request did not say; Forever: until unloaded. 0 is the
	// default, DefaultKeepAlive: use NoKeepAlive for none.
	KeepAlive time.Duration
	// MaxLoaded is how many models may be loaded at once, the pinned one
	// included; 0: DefaultMaxLoaded.
	MaxLoaded int
	// Memory is what the models loaded on this machine may take
	// together; nil, or 0: no cap besides MaxLoaded. It is called
	// without the scheduler's lock, so it may ask the scheduler (Loaded).
	Memory func() uint64
	// Resolve names the model a request asks for as the scheduler keys
	// it (its library name), or says there is no such model here.
	Resolve func(name string) (key string, ok bool)
	// Open prepares the model key to be started; it starts nothing.
	Open func(key string) (Model, error)
	// Changed is called when a model was loaded or unloaded, and
	// Unloaded with the key of each model unloaded.
	Changed  func()
	Unloaded func(key string)
	Log      *slog.Logger
}

// NoKeepAlive is a Config.KeepAlive of none: a model unloads as soon as
// it is idle.
const NoKeepAlive time.Duration = -2

// ErrBusy is a load that finds no room: every loaded model is serving.
var ErrBusy = errors.New("no room to load the model")

// Scheduler loads models on demand and unloads idle ones.
type Scheduler struct {
	cfg Config
	log *slog.Logger

	mu     sync.Mutex
	ctx    context.Context // Run's; nil before Run
	models map[string]*entry
	now    func() time.Time
}

type entry struct {
	key       string
	m         Model
	pinned    bool
	loadedAt  time.Time
	lastUsed  time.Time
	keepAlive time.Duration // Forever, or >= 0
}

// idleGrace is how long a model asked for is counted busy before its
// request reaches it: it is neither unloaded nor evicted meanwhile.
const idleGrace = 500 * time.Millisecond

// New returns a scheduler; Run makes it load and unload.
func New(cfg Config) *Scheduler {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	switch cfg.KeepAlive {
	case 0:
		cfg.KeepAlive = DefaultKeepAlive
	case NoKeepAlive:
		cfg.KeepAlive = 0
	}
	if cfg.MaxLoaded <= 0 {
		cfg.MaxLoaded = DefaultMaxLoaded
	}
	if cfg.Changed == nil {
		cfg.Changed = func() {}
	}
	if cfg.Unloaded == nil {
		cfg.Unloaded = func(string) {}
	}
	return &Scheduler{cfg: cfg, log: cfg.Log, models: map[string]*entry{}, now: time.Now}
}

// Run unloads models whose keep-alive ran out until ctx ends; then it
// unloads every model it loaded.
func (s *Scheduler) Run(ctx context.Context) {
	s.mu.Lock()
	s.ctx = ctx
	s.mu.Unlock()
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			s.mu.Lock()
			var stop []*entry
			for k, e := range s.models {
				if !e.pinned {
					stop = append(stop, e)
				}
				delete(s.models, k)
			}
			s.mu.Unlock()
			for _, e := range stop {
				e.m.Stop()
			}
			return
		case <-t.C:
			s.reap()
		}
	}
}

// reap unloads what expired, and notes when busy models were last busy.
func (s *Scheduler) reap() {
	var stop []*entry
	s.mu.Lock()
	now := s.now()
	for k, e := range s.models {
		if e.pinned {
			continue
		}
		if e.m.InFlight() > 0 || loading(e.m) {
			e.lastUsed = now
			continue
		}
		if e.keepAlive != Forever && now.Sub(e.lastUsed) >= max(e.keepAlive, idleGrace) {
			delete(s.models, k)
			stop = append(stop, e)
		}
	}
	s.mu.Unlock()
	for _, e := range stop {
		s.log.Info("unloading an idle model", "model", e.key, "keep_alive", e.keepAlive)
		e.m.Stop()
		s.cfg.Unloaded(e.key)
	}
	if len(stop) > 0 {
		s.cfg.Changed()
	}
}

// loading says whether m is still on its way to ready (and not failed):
// requests wait for it.
func loading(m Model) bool {
	st := m.Status()
	return st != nil && !st.Ready && st.State.LastError == "" && m.LocalAddr() == ""
}

// Pin counts m, served as key, as loaded for good, in place of the model
// pinned before; nil pins none. The caller starts and stops it.
func (s *Scheduler) Pin(key string, m Model) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, e := range s.models {
		if e.pinned {
			delete(s.models, k)
		}
	}
	if m == nil {
		return
	}
	if e, ok := s.models[key]; ok {
		// Loaded on demand before: the pinned one serves it now.
		delete(s.models, key)
		go e.m.Stop()
	}
	now := s.now()
	s.models[key] = &entry{key: key, m: m, pinned: true, loadedAt: now, lastUsed: now, keepAlive: Forever}
}

// Resolve is the key the model name is loaded under, if the model is here.
func (s *Scheduler) Resolve(name string) (string, bool) {
	if s.cfg.Resolve == nil {
		return "", false
	}
	return s.cfg.Resolve(name)
}

// Get is the loaded (or loading) model key, with its keep-alive renewed
// when touch is set.
func (s *Scheduler) Get(key string) (Model, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.models[key]
	if !ok {
		return nil, false
	}
	return e.m, true
}

// Load returns the model key, loading it when it is not: the first of any
// number of requests at once starts it, and the others get the same one.
// keepAlive is how long it stays loaded after its last request from now
// on (negative: Forever), as each request says; nil: the default. Making
// room
// unloads the least recently used idle models; ErrBusy says there is
// none to unload.
func (s *Scheduler) Load(key string, keepAlive *time.Duration) (Model, error) {
	ka := s.cfg.KeepAlive
	if keepAlive != nil {
		ka = max(*keepAlive, Forever)
	}
	s.mu.Lock()
	if s.ctx == nil {
		s.mu.Unlock()
		return nil, errors.New("the node is not running")
	}
	now := s.now()
	if e, ok := s.models[key]; ok {
		e.lastUsed = now
		if !e.pinned {
			e.keepAlive = ka
		}
		s.mu.Unlock()
		return e.m, nil
	}
	s.mu.Unlock()

	// Opening reads the model's file, and the memory there is may ask
	// what is loaded: not under the lock.
	m, err := s.cfg.Open(key)
	if err != nil {
		return nil, err
	}
	var limit uint64
	if s.cfg.Memory != nil {
		limit = s.cfg.Memory()
	}

	s.mu.Lock()
	if e, ok := s.models[key]; ok { // another request got there first
		e.lastUsed = now
		s.mu.Unlock()
		return e.m, nil
	}
	evict, err := s.room(m.Footprint(), limit)
	if err != nil {
		s.mu.Unlock()
		return nil, fmt.Errorf("%w for %s: %v", ErrBusy, key, err)
	}
	for _, e := range evict {
		delete(s.models, e.key)
	}
	s.models[key] = &entry{key: key, m: m, loadedAt: now, lastUsed: now, keepAlive: ka}
	ctx := s.ctx
	s.mu.Unlock()

	for _, e := range evict {
		s.log.Info("unloading the least recently used model to make room", "model", e.key, "for", key)
		e.m.Stop()
		s.cfg.Unloaded(e.key)
	}
	s.log.Info("loading a model on request", "model", key, "keep_alive", ka)
	m.Start(ctx)
	s.cfg.Changed()
	return m, nil
}

// room picks the models to unload so that one of need bytes more fits in
// limit (0: no limit): the least recently used idle ones first. The
// caller holds mu.
func (s *Scheduler) room(need, limit uint64) ([]*entry, error) {
	var used uint64
	var idle []*entry
	now := s.now()
	for _, e := range s.models {
		used += e.m.Footprint()
		if !e.pinned && e.m.InFlight() == 0 && !loading(e.m) && now.Sub(e.lastUsed) >= idleGrace {
			idle = append(idle, e)
		}
	}
	slices.SortFunc(idle, func(a, b *entry) int { return a.lastUsed.Compare(b.lastUsed) })
	n := len(s.models)
	var evict []*entry
	full := func() bool { return n >= s.cfg.MaxLoaded || (limit > 0 && n > 0 && used+need > limit) }
	for full() && len(idle) > 0 {
		e := idle[0]
		idle = idle[1:]
		evict = append(evict, e)
		n--
		used -= e.m.Footprint()
	}
	if n >= s.cfg.MaxLoaded {
		return nil, fmt.Errorf("%d models are loaded (--max-loaded-models) and all are serving", n)
	}
	if limit > 0 && n > 0 && used+need > limit {
		return nil, fmt.Errorf("it needs %s, and the models that are serving take %s of the %s models may use (--models-memory)",
			size.Format(need), size.Format(used), size.Format(limit))
	}
	return evict, nil
}

// Unload unloads the model key now, even while it serves; false when it
// is not loaded, or pinned.
func (s *Scheduler) Unload(key string) bool {
	s.mu.Lock()
	e, ok := s.models[key]
	if !ok || e.pinned {
		s.mu.Unlock()
		return false
	}
	delete(s.models, key)
	s.mu.Unlock()
	s.log.Info("unloading a model", "model", key)
	e.m.Stop()
	s.cfg.Unloaded(key)
	s.cfg.Changed()
	return true
}

// Loaded describes a loaded (or loading) model.
type Loaded struct {
	Key    string
	Model  Model
	Pinned bool
	// Expires is when it unloads if no request comes; zero: never.
	Expires  time.Time
	LastUsed time.Time
}

// Loaded lists the models loaded, or loading, by key.
func (s *Scheduler) Loaded() []Loaded {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Loaded, 0, len(s.models))
	now := s.now()
	for _, e := range s.models {
		l := Loaded{Key: e.key, Model: e.m, Pinned: e.pinned, LastUsed: e.lastUsed}
		if !e.pinned && e.keepAlive != Forever {
			from := e.lastUsed
			if e.m.InFlight() > 0 {
				from = now
			}
			l.Expires = from.Add(e.keepAlive)
		}
		out = append(out, l)
	}
	slices.SortFunc(out, func(a, b Loaded) int {
		if a.Key < b.Key {
			return -1
		}
		if a.Key > b.Key {
			return 1
		}
		return 0
	})
	return out
}

// Touch renews the keep-alive of the model key from now, as a request
// for it does.
func (s *Scheduler) Touch(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.models[key]; ok {
		e.lastUsed = s.now()
	}
}

package app

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/potluck-gpu/potluck/host"
	"github.com/potluck-gpu/potluck/library"
	"github.com/potluck-gpu/potluck/nodestate"
	"github.com/potluck-gpu/potluck/sched"
)

// newScheduler loads this node's models on request, beside the one it
// serves.
func (n *Node) newScheduler() *sched.Scheduler {
	return sched.New(sched.Config{
		KeepAlive: n.cfg.KeepAlive,
		MaxLoaded: n.cfg.MaxLoadedModels,
		Memory:    n.modelsMemory,
		// By library name only: a member's request names no file on this
		// machine, and learns nothing of which ones there are.
		Resolve: func(name string) (string, bool) {
			m, ok := n.lib.Find(strings.TrimSuffix(name, ":latest"))
			if !ok {
				m, ok = n.lib.Find(name)
			}
			return m.Name, ok
		},
		Open: func(key string) (sched.Model, error) {
			m, ok := n.lib.Find(key)
			if !ok {
				return nil, &library.NotFoundError{Name: key}
			}
			h := n.newScopedHost(key, "llama-server-"+logName(m.Name), m.Name)
			h.SetModel(m.Path, m.Name)
			return h, nil
		},
		Unloaded: n.clearScopedWarnings,
		Changed: func() {
			n.publishInfo()
			n.events.publish(nodestate.Event{Kind: nodestate.EventStatus})
		},
		Log: n.log.With("part", "sched"),
	})
}

// modelsMemory is what the models loaded here may take together: the cap
// the user set, or what the planner offers a model on this machine now,
// plus what the models loaded here take of it already.
func (n *Node) modelsMemory() uint64 {
	if n.cfg.ModelsMemory > 0 {
		return n.cfg.ModelsMemory
	}
	total := n.headMemory()
	if total == 0 {
		return 0
	}
	for _, l := range n.sched.Loaded() {
		total += l.Model.Footprint()
	}
	return total
}

// logName is a model's name as a log file's.
func logName(alias string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r == ':' || r < ' ' {
			return '-'
		}
		return r
	}, alias)
}

// localModels lists the models on this machine, as the router asks for
// each request: the scan is kept for a moment.
type localModels struct {
	lib  *library.Library
	mu   sync.Mutex
	at   time.Time
	last []library.Model
}

func (l *localModels) list() []library.Model {
	l.mu.Lock()
	defer l.mu.Unlock()
	if time.Since(l.at) > 2*time.Second {
		l.last, _ = l.lib.List()
		l.at = time.Now()
	}
	return l.last
}

// loadedModels are the models loaded here on request, for the status.
func (n *Node) loadedModels() []nodestate.LoadedModel {
	var out []nodestate.LoadedModel
	for _, l := range n.sched.Loaded() {
		if l.Pinned {
			continue
		}
		st := l.Model.Status()
		lm := nodestate.LoadedModel{Name: l.Key, Ready: st.Ready, Detail: st.Detail, InFlight: l.Model.InFlight(), Bytes: l.Model.Footprint()}
		if !l.Expires.IsZero() {
			e := l.Expires
			lm.ExpiresAt = &e
		}
		out = append(out, lm)
	}
	return out
}

var _ sched.Model = (*host.Host)(nil)

// headMemory is the memory this machine offers a model on its own.
func (n *Node) headMemory() uint64 {
	var total uint64
	for _, d := range n.headDevices() {
		total += d.Offer
	}
	return total
}

// runFront serves the door members' requests come through to the models
// here, on loopback, until ctx ends; reexpose offers it to the network
// while sharing as a server.
func (n *Node) runFront(ctx context.Context) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("members' door to the models: %w", err)
	}
	front := &sched.Front{
		Sched: n.sched,
		Name:  n.cfg.Name,
		Pinned: func() (string, http.Handler) {
			h := n.modelHost()
			if h == nil {
				return "", nil
			}
			_, alias := h.Ident()
			return alias, h
		},
		AllowLoads: func() bool { return !n.cfg.NoPeerLoads },
		Wait:       5 * time.Minute,
		Log:        n.log.With("part", "front"),
	}
	srv := &http.Server{Handler: front, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	n.mu.Lock()
	n.frontAddr = ln.Addr().String()
	n.mu.Unlock()
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	go srv.Serve(ln)
	return nil
}

// pin counts the host of the model the node serves as loaded for good; nil:
// it serves none.
func (n *Node) pin(h *host.Host) {
	if h == nil {
		n.sched.Pin("", nil)
		return
	}
	_, alias := h.Ident()
	n.sched.Pin(alias, h)
}

// clearScopedWarnings clears the warnings of the model key, loaded on
// request and now unloaded.
func (n *Node) clearScopedWarnings(key string) {
	n.mu.Lock()
	var codes []string
	for code := range n.warnings {
		if strings.HasSuffix(code, ":"+key) {
			codes = append(codes, code)
		}
	}
	n.mu.Unlock()
	for _, c := range codes {
		n.clearWarning(c)
	}
}

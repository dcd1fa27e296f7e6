package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/potluck-gpu/potluck/engine"
	"github.com/potluck-gpu/potluck/server"
)

// Node is one running Potluck node.
type Node struct {
	cfg Config
	log *slog.Logger

	started time.Time
	srv     *server.Server

	mu       sync.Mutex
	runtime  engine.Runtime
	versions engine.Versions
	llama    *localModel // nil when no model is served
	engErr   error       // why llama.cpp is unavailable
}

// NewNode prepares a node from cfg; it starts nothing.
func NewNode(cfg Config, log *slog.Logger) (*Node, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	n := &Node{cfg: cfg, log: log, started: time.Now()}
	srv, err := server.New(server.Config{Addr: cfg.API, APIKey: cfg.APIKey, CORSOrigin: cfg.CORSOrigin}, n, func() any { return n.Status() }, log.With("part", "api"))
	if err != nil {
		return nil, err
	}
	n.srv = srv
	return n, nil
}

// Up waits until the API listens and returns its address.
func (n *Node) Up(ctx context.Context) (string, error) {
	addr, err := n.srv.Up(ctx)
	if err != nil {
		return "", err
	}
	return addr.String(), nil
}

// Run runs the node until ctx ends. A failure to find llama.cpp is not fatal
// when no model is configured; it is reported in the status.
func (n *Node) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rt, err := n.cfg.Llama.Find()
	if err != nil {
		n.setEngineErr(err)
		if n.cfg.Model != "" {
			return err
		}
		n.log.Warn("llama.cpp not available", "err", err)
	} else {
		n.mu.Lock()
		n.runtime = rt
		n.mu.Unlock()
		go n.probeVersions(ctx, rt)
	}

	var wg sync.WaitGroup
	errc := make(chan error, 2)
	wg.Add(1)
	go func() {
		defer wg.Done()
		errc <- n.srv.Run(ctx)
	}()
	if n.cfg.Model != "" {
		lm, err := n.startModel(rt)
		if err != nil {
			cancel()
			wg.Wait()
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := lm.sup.Run(ctx); err != nil {
				errc <- fmt.Errorf("serving %s: %w", n.cfg.Model, err)
			}
		}()
	}
	var first error
	select {
	case <-ctx.Done():
	case first = <-errc:
	}
	cancel()
	wg.Wait()
	return first
}

func (n *Node) setEngineErr(err error) {
	n.mu.Lock()
	n.engErr = err
	n.mu.Unlock()
}

func (n *Node) probeVersions(ctx context.Context, rt engine.Runtime) {
	v, err := rt.Probe(ctx)
	if err != nil {
		if ctx.Err() == nil {
			n.log.Warn("llama.cpp version probe", "err", err)
		}
		return
	}
	n.mu.Lock()
	n.versions = v
	n.mu.Unlock()
}

// localModel is a model served by this node's own llama-server.
type localModel struct {
	alias string
	path  string
	port  int
	sup   *engine.Supervisor
}

func (n *Node) startModel(rt engine.Runtime) (*localModel, error) {
	port, err := engine.FreePort()
	if err != nil {
		return nil, err
	}
	logs := filepath.Join(n.cfg.DataDir, "logs")
	if err := os.MkdirAll(logs, 0o700); err != nil {
		return nil, err
	}
	lm := &localModel{alias: ModelAlias(n.cfg.Model), path: n.cfg.Model, port: port}
	spec := rt.ServerSupervisorSpec(engine.ServerSpec{
		Model: n.cfg.Model, Alias: lm.alias, Port: port,
		CtxSize: n.cfg.CtxSize, Threads: n.cfg.Threads,
	})
	spec.Log = n.log.With("part", "engine")
	spec.LogFile = filepath.Join(logs, "llama-server.log")
	lm.sup = engine.NewSupervisor(spec)
	n.mu.Lock()
	n.llama = lm
	n.mu.Unlock()
	return lm, nil
}

// Models implements server.Router.
func (n *Node) Models() []server.Model {
	n.mu.Lock()
	lm := n.llama
	n.mu.Unlock()
	if lm == nil {
		return nil
	}
	st := lm.sup.Status()
	return []server.Model{{ID: lm.alias, Ready: st.State == engine.StateReady, State: st.State.String(), Nodes: []string{n.cfg.Name}}}
}

// Route implements server.Router.
func (n *Node) Route(model string) (server.Upstream, error) {
	n.mu.Lock()
	lm := n.llama
	n.mu.Unlock()
	if lm == nil {
		return server.Upstream{}, server.ErrNoModel
	}
	if model != "" && model != lm.alias && model != lm.path && model != filepath.Base(lm.path) {
		return server.Upstream{}, &server.UnknownModelError{Model: model, Available: []string{lm.alias}}
	}
	switch st := lm.sup.Status(); st.State {
	case engine.StateReady:
		return server.Upstream{Node: n.cfg.Name, BaseURL: fmt.Sprintf("http://127.0.0.1:%d", lm.port)}, nil
	case engine.StateFailed:
		return server.Upstream{}, errors.New("the model failed to start: " + st.LastError)
	default:
		return server.Upstream{}, server.ErrLoading
	}
}

// Status is the document behind GET /api/status.
type Status struct {
	Name     string       `json:"name"`
	Version  string       `json:"version"`
	UptimeS  int64        `json:"uptime_s"`
	API      string       `json:"api"`
	Engine   EngineStatus `json:"engine"`
	Model    *ModelStatus `json:"model,omitempty"`
	Warnings []string     `json:"warnings,omitempty"`
}

// EngineStatus describes llama.cpp on this node.
type EngineStatus struct {
	Available   bool           `json:"available"`
	Error       string         `json:"error,omitempty"`
	Runtime     engine.Runtime `json:"runtime"`
	Server      string         `json:"server_version,omitempty"`
	RPCProtocol string         `json:"rpc_protocol,omitempty"`
}

// ModelStatus describes the locally served model.
type ModelStatus struct {
	ID    string        `json:"id"`
	Path  string        `json:"path"`
	Ready bool          `json:"ready"`
	State engine.Status `json:"state"`
}

// Status returns a snapshot of the node.
func (n *Node) Status() Status {
	n.mu.Lock()
	defer n.mu.Unlock()
	st := Status{
		Name: n.cfg.Name, Version: Version, UptimeS: int64(time.Since(n.started).Seconds()),
		API: "http://" + n.cfg.API + "/v1",
		Engine: EngineStatus{Available: n.engErr == nil, Runtime: n.runtime,
			Server: n.versions.Server, RPCProtocol: n.versions.RPCProtocol},
	}
	if n.engErr != nil {
		st.Engine.Error = n.engErr.Error()
		st.Warnings = append(st.Warnings, "llama.cpp not found: run `potluck engine install`")
	}
	if n.llama != nil {
		s := n.llama.sup.Status()
		st.Model = &ModelStatus{ID: n.llama.alias, Path: n.llama.path, Ready: s.State == engine.StateReady, State: s}
	}
	return st
}

var _ server.Router = (*Node)(nil)

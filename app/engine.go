package app

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/potluck-gpu/potluck/engine"
	"github.com/potluck-gpu/potluck/nodestate"
	"github.com/potluck-gpu/potluck/runtimes"
	"github.com/potluck-gpu/potluck/sandbox"
)

// EngineConfig says which llama.cpp the node runs and how it gets one.
type EngineConfig struct {
	// Version is the llama.cpp version the node runs (and provisions when
	// it has none); "": runtimes.DefaultVersion.
	Version string
	// Backend is the build to provision: "auto" (or "") chooses from the
	// GPUs; otherwise one of runtimes.Backends.
	Backend string
	// Releases is the releases API to provision from; "": llama.cpp's
	// own. Giving one prefers its archives to Debian's packages.
	Releases string
	Mirror   string // a Debian mirror for Debian's packages; "": the apt sources'
	// NoFetch keeps the node from fetching llama.cpp by itself.
	NoFetch bool
	// Launcher is the program that starts llama.cpp's children in the
	// sandbox: Potluck itself, whose main runs sandbox.LaunchOrExit. ""
	// (or NoSandbox) starts them unconfined.
	Launcher  string
	NoSandbox bool
}

// confinement is how the node starts llama.cpp's children: in the sandbox
// where this OS has one, with their caches under the data folder.
func (n *Node) confinement() *engine.Confinement {
	c := n.cfg.Engine
	if c.NoSandbox || (sandbox.Launches && c.Launcher == "") || (!sandbox.Launches && !sandbox.Contains) {
		return nil
	}
	return &engine.Confinement{Launcher: c.Launcher, Cache: filepath.Join(n.cfg.DataDir, "sandbox")}
}

// warnSandbox says, once llama.cpp is found, where its children are less
// confined than they should be.
func (n *Node) warnSandbox() {
	if n.cfg.Engine.Launcher == "" {
		return
	}
	msg := ""
	s := sandbox.Supported()
	switch {
	case n.cfg.Engine.NoSandbox:
		msg = "llama.cpp's children run unconfined (--no-sandbox): what members send them reaches a process that can read your files"
	case s.Missing != "":
		msg = s.Missing
	}
	if msg != "" {
		n.log.Warn("sandbox", "msg", msg)
		n.warn(nodestate.Warning{Code: "sandbox", Severity: nodestate.SeverityWarning, Message: msg})
	}
	if s.NoMemoryCap != "" && !n.cfg.Engine.NoSandbox {
		n.warn(nodestate.Warning{Code: "sandbox-memory", Severity: nodestate.SeverityInfo, Message: s.NoMemoryCap})
	}
}

func (c EngineConfig) version() string {
	if c.Version == "" {
		return runtimes.DefaultVersion
	}
	return c.Version
}

// errFetching is the engine error while llama.cpp is being fetched.
var errFetching = errors.New("llama.cpp is being fetched")

func (n *Node) store() runtimes.Store { return runtimes.Store{Dir: n.cfg.Llama.ProvisionDir} }

// provisioned is the Locator's last place: the store's build of the
// version this node runs.
func (n *Node) provisioned() (engine.Runtime, bool) {
	return n.store().Runtime(n.cfg.Engine.version(), false)
}

// findEngine finds llama.cpp, as the user installed it or as provisioned
// before. It says whether the node should fetch one.
func (n *Node) findEngine(ctx context.Context) (fetch bool) {
	rt, err := n.cfg.Llama.Find()
	if err != nil && !n.cfg.Engine.NoFetch && n.cfg.Llama.ProvisionDir != "" {
		n.mu.Lock()
		n.engErr = errFetching
		n.provisioning = &nodestate.Provisioning{Version: n.cfg.Engine.version(), For: "this node", Status: "starting"}
		n.mu.Unlock()
		return true // fetchEngine closes engReady
	}
	n.useEngine(ctx, rt, err)
	close(n.engReady)
	return false
}

// useEngine makes rt the node's llama.cpp, or records why there is none.
func (n *Node) useEngine(ctx context.Context, rt engine.Runtime, err error) {
	if err != nil {
		n.mu.Lock()
		n.engErr = err
		n.mu.Unlock()
		n.warn(nodestate.Warning{Code: "llama-not-found", Severity: nodestate.SeverityError,
			Message: "llama.cpp was not found: " + engine.InstallAdvice()})
		n.log.Warn("llama.cpp not available", "err", err)
		return
	}
	n.warnSandbox()
	rt = rt.Confined(n.confinement())
	v, perr := rt.Probe(ctx)
	if perr != nil {
		n.log.Warn("llama.cpp version probe", "err", perr)
	}
	n.mu.Lock()
	n.runtime, n.versions, n.engErr = rt, v, nil
	n.provisioning = nil
	n.mu.Unlock()
	n.clearWarning("llama-not-found")
	if runtimes.Older(v.Release, runtimes.DefaultVersion) {
		n.warn(nodestate.Warning{Code: "llama-outdated", Severity: nodestate.SeverityWarning, Message: runtimes.OutdatedAdvice(v.Release)})
	} else {
		n.clearWarning("llama-outdated")
	}
}

// fetchEngine provisions the llama.cpp this node runs, with progress in
// the status, then starts using it. Where it cannot be fetched, a build of
// another version already here is used, with a warning; a network that is
// down is tried again later.
func (n *Node) fetchEngine(ctx context.Context) {
	n.mu.Lock()
	ready := n.engReady
	n.mu.Unlock()
	defer func() {
		n.mu.Lock()
		n.provisioning = nil
		n.mu.Unlock()
		close(ready)
		n.events.publish(nodestate.Event{Kind: nodestate.EventStatus})
	}()
	version := n.cfg.Engine.version()
	for wait := 30 * time.Second; ; wait = min(2*wait, 30*time.Minute) {
		b, err := n.install(ctx, version, "this node")
		if err == nil {
			rt, rerr := b.Runtime()
			n.useEngine(ctx, rt, rerr)
			if rerr == nil {
				n.afterEngine(ctx, version)
			}
			return
		}
		if ctx.Err() != nil {
			return
		}
		n.log.Warn("could not get llama.cpp", "version", version, "err", err)
		if other, ok := n.store().Find("", ""); ok {
			rt, rerr := other.Runtime()
			n.useEngine(ctx, rt, rerr)
			if rerr == nil {
				n.warn(nodestate.Warning{Code: "llama-version", Severity: nodestate.SeverityWarning, Message: fmt.Sprintf(
					"running llama.cpp %s: could not get %s, the version this Potluck runs (%v); splits need every machine on the same version", other.Name(), version, err)})
				n.afterEngine(ctx, other.Version)
			}
			return
		}
		n.warn(nodestate.Warning{Code: "llama-not-found", Severity: nodestate.SeverityError, Message: "could not get llama.cpp: " + err.Error()})
		var ue *runtimes.UnreachableError
		if !errors.As(err, &ue) {
			n.mu.Lock()
			n.engErr = fmt.Errorf("could not get llama.cpp %s: %w", version, err)
			n.mu.Unlock()
			return
		}
		n.mu.Lock()
		if pr := n.provisioning; pr != nil {
			pr.Error, pr.Status = err.Error(), "waiting to try again"
		}
		n.mu.Unlock()
		n.events.publish(nodestate.Event{Kind: nodestate.EventStatus})
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// afterEngine puts a llama.cpp that arrived after the start to work.
func (n *Node) afterEngine(ctx context.Context, keep string) {
	for _, b := range n.store().Prune(keep, n.cfg.Engine.version()) {
		n.log.Info("removed an unused llama.cpp build", "build", b.Name(), "dir", b.Dir)
	}
	n.listDevices(ctx)
	n.publishInfo()
	if h := n.modelHost(); h != nil {
		h.Kick()
	}
}

// install provisions version for whoever needs it, showing the progress in
// the status.
func (n *Node) install(ctx context.Context, version, forWhom string) (runtimes.Build, error) {
	c := n.cfg.Engine
	n.mu.Lock()
	report := n.hwReport
	n.mu.Unlock()
	var client *runtimes.Client
	var err error
	if client, err = runtimes.NewClient(c.Releases, "potluck/"+Version); err != nil {
		return runtimes.Build{}, err
	}
	n.mu.Lock()
	if n.provisioning == nil {
		n.provisioning = &nodestate.Provisioning{}
	}
	*n.provisioning = nodestate.Provisioning{Version: version, For: forWhom, Status: "looking for it"}
	n.mu.Unlock()
	n.events.publish(nodestate.Event{Kind: nodestate.EventStatus})
	last := time.Time{}
	res, err := n.store().Install(ctx, runtimes.InstallOptions{
		Version: version, Backend: c.Backend, Hardware: report,
		Releases: client, ReleasesGiven: c.Releases != "",
		Debian: engine.InstallOptions{Mirror: c.Mirror},
		Fetching: func(backend string, bytes int64) {
			n.mu.Lock()
			if pr := n.provisioning; pr != nil {
				pr.Backend, pr.Total = backend, bytes
			}
			n.mu.Unlock()
		},
		Progress: func(p runtimes.Progress) {
			n.mu.Lock()
			if pr := n.provisioning; pr != nil {
				pr.Status = p.Status
				if p.Total > 0 {
					pr.Completed = p.Completed
				}
			}
			n.mu.Unlock()
			if p.Total == 0 || time.Since(last) > 250*time.Millisecond || p.Completed == p.Total {
				last = time.Now()
				if p.Total == 0 {
					n.log.Info("llama.cpp: " + p.Status)
				}
				n.events.publish(nodestate.Event{Kind: nodestate.EventStatus})
			}
		},
	})
	if err != nil {
		return runtimes.Build{}, err
	}
	n.mu.Lock()
	if pr := n.provisioning; pr != nil {
		pr.Backend = res.Build.Backend
	}
	n.mu.Unlock()
	if res.Fetched {
		n.log.Info("llama.cpp provisioned", "build", res.Build.Name(), "for", forWhom, "why", res.Choice.Why, "dir", res.Build.Dir)
	}
	return res.Build, nil
}

// waitEngine waits until llama.cpp is found or fetched at the start (a
// tray can ask before the probe of the one found has ended), and says why
// there is none if there is none.
func (n *Node) waitEngine(ctx context.Context) error {
	n.mu.Lock()
	ready := n.engReady
	n.mu.Unlock()
	if ready != nil {
		select {
		case <-ready:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return n.engineError()
}

func (n *Node) engineError() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.engErr
}

func (n *Node) engineRuntime() (engine.Runtime, engine.Versions, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.runtime, n.versions, n.engErr
}

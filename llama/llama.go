// Package llama keeps the llama.cpp a node runs: the one the user put in
// place, or the one this Potluck pins, fetched with progress and fetched
// again while the network is down, confined in the sandbox and probed for
// its versions; and, for the shard worker, the release the pool's heads
// split with when it is another.
package llama

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/potluck-gpu/potluck/engine"
	"github.com/potluck-gpu/potluck/hw"
	"github.com/potluck-gpu/potluck/nodestate"
	"github.com/potluck-gpu/potluck/runtimes"
	"github.com/potluck-gpu/potluck/sandbox"
)

// Config says which llama.cpp the node runs and how it gets one.
type Config struct {
	Locator engine.Locator // where to find the one the user put in place
	Store   runtimes.Store // where provisioned builds are kept; Dir "": none
	// Version is the release the node runs (and provisions when it has
	// none); "": runtimes.DefaultVersion.
	Version string
	// Backend is the build to provision: "auto" (or "") chooses from the
	// GPUs; otherwise one of runtimes.Backends.
	Backend string
	// Releases is the releases API to provision from; "": llama.cpp's
	// own. Giving one prefers its archives to Debian's packages.
	Releases string
	Mirror   string // a Debian mirror for Debian's packages
	NoFetch  bool   // never fetch: use what is installed
	// Confinement is how its children start (see sandbox); nil:
	// unconfined. Launcher and NoSandbox say why, for the warnings.
	Confinement *engine.Confinement
	Launcher    string
	NoSandbox   bool
	UserAgent   string
	Log         *slog.Logger
}

// WantedVersion is the release the node runs.
func (c Config) WantedVersion() string {
	if c.Version == "" {
		return runtimes.DefaultVersion
	}
	return c.Version
}

// Node is what a Keeper tells the node: its warnings, that its status
// changed, and the hardware it provisions for.
type Node interface {
	Warn(nodestate.Warning)
	ClearWarning(code string)
	Changed()
	Hardware() *hw.Report
}

// ErrFetching is the error while llama.cpp is being fetched.
var ErrFetching = errors.New("llama.cpp is being fetched")

// Keeper is the node's llama.cpp.
type Keeper struct {
	cfg  Config
	node Node
	log  *slog.Logger

	mu       sync.Mutex
	runtime  engine.Runtime
	versions engine.Versions
	err      error                   // why llama.cpp is unavailable
	progress *nodestate.Provisioning // llama.cpp being fetched; nil when none is
	ready    chan struct{}           // closed once it is found, fetched, or known to be missing
	lend     *lendRuntime            // the worker's, when it matches a head's
}

// New returns the keeper; Find starts it.
func New(cfg Config, node Node) *Keeper {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	k := &Keeper{cfg: cfg, node: node, log: cfg.Log, ready: make(chan struct{})}
	if k.cfg.Locator.Provisioned == nil && k.cfg.Store.Dir != "" {
		k.cfg.Locator.Provisioned = k.Provisioned
	}
	return k
}

// Provisioned is the Locator's last place: the store's build of the
// version the node runs.
func (k *Keeper) Provisioned() (engine.Runtime, bool) {
	return k.cfg.Store.Runtime(k.cfg.WantedVersion(), false)
}

// Find finds llama.cpp, as the user installed it or as provisioned
// before. It says whether the node should Fetch one.
func (k *Keeper) Find(ctx context.Context) (fetch bool) {
	rt, err := k.cfg.Locator.Find()
	if err != nil && !k.cfg.NoFetch && k.cfg.Store.Dir != "" {
		k.mu.Lock()
		k.err = ErrFetching
		k.progress = &nodestate.Provisioning{Version: k.cfg.WantedVersion(), For: "this node", Status: "starting"}
		k.mu.Unlock()
		return true // Fetch closes ready
	}
	k.use(ctx, rt, err)
	close(k.ready)
	return false
}

// use makes rt the node's llama.cpp, or records why there is none.
func (k *Keeper) use(ctx context.Context, rt engine.Runtime, err error) {
	if err != nil {
		k.mu.Lock()
		k.err = err
		k.mu.Unlock()
		k.node.Warn(nodestate.Warning{Code: "llama-not-found", Severity: nodestate.SeverityError,
			Message: "llama.cpp was not found: " + engine.InstallAdvice()})
		k.log.Warn("llama.cpp not available", "err", err)
		return
	}
	k.warnSandbox()
	rt = rt.Confined(k.cfg.Confinement)
	v, perr := rt.Probe(ctx)
	if perr != nil {
		k.log.Warn("llama.cpp version probe", "err", perr)
	}
	k.mu.Lock()
	k.runtime, k.versions, k.err = rt, v, nil
	k.progress = nil
	k.mu.Unlock()
	k.node.ClearWarning("llama-not-found")
	if runtimes.Older(v.Release, runtimes.DefaultVersion) {
		k.node.Warn(nodestate.Warning{Code: "llama-outdated", Severity: nodestate.SeverityWarning, Message: runtimes.OutdatedAdvice(v.Release)})
	} else {
		k.node.ClearWarning("llama-outdated")
	}
}

// warnSandbox says, once llama.cpp is found, where its children are less
// confined than they should be.
func (k *Keeper) warnSandbox() {
	if k.cfg.Launcher == "" {
		return
	}
	msg := ""
	s := sandbox.Supported()
	switch {
	case k.cfg.NoSandbox:
		msg = "llama.cpp's children run unconfined (--no-sandbox): what members send them reaches a process that can read your files"
	case s.Missing != "":
		msg = s.Missing
	}
	if msg != "" {
		k.log.Warn("sandbox", "msg", msg)
		k.node.Warn(nodestate.Warning{Code: "sandbox", Severity: nodestate.SeverityWarning, Message: msg})
	}
	if s.NoMemoryCap != "" && !k.cfg.NoSandbox {
		k.node.Warn(nodestate.Warning{Code: "sandbox-memory", Severity: nodestate.SeverityInfo, Message: s.NoMemoryCap})
	}
}

// Fetch provisions the llama.cpp the node runs, with progress in the
// status, then starts using it. Where it cannot be fetched, a build of
// another version already here is used, with a warning; a network that is
// down is tried again later. arrived is told when one came.
func (k *Keeper) Fetch(ctx context.Context, arrived func()) {
	defer func() {
		k.mu.Lock()
		k.progress = nil
		k.mu.Unlock()
		close(k.ready)
		k.node.Changed()
	}()
	version := k.cfg.WantedVersion()
	for wait := 30 * time.Second; ; wait = min(2*wait, 30*time.Minute) {
		b, err := k.Install(ctx, version, "this node")
		if err == nil {
			rt, rerr := b.Runtime()
			k.use(ctx, rt, rerr)
			if rerr == nil {
				k.Prune(version)
				arrived()
			}
			return
		}
		if ctx.Err() != nil {
			return
		}
		k.log.Warn("could not get llama.cpp", "version", version, "err", err)
		if other, ok := k.cfg.Store.Find("", ""); ok {
			rt, rerr := other.Runtime()
			k.use(ctx, rt, rerr)
			if rerr == nil {
				k.node.Warn(nodestate.Warning{Code: "llama-version", Severity: nodestate.SeverityWarning, Message: fmt.Sprintf(
					"running llama.cpp %s: could not get %s, the version this Potluck runs (%v); splits need every machine on the same version", other.Name(), version, err)})
				k.Prune(other.Version)
				arrived()
			}
			return
		}
		k.node.Warn(nodestate.Warning{Code: "llama-not-found", Severity: nodestate.SeverityError, Message: "could not get llama.cpp: " + err.Error()})
		var ue *runtimes.UnreachableError
		if !errors.As(err, &ue) {
			k.mu.Lock()
			k.err = fmt.Errorf("could not get llama.cpp %s: %w", version, err)
			k.mu.Unlock()
			return
		}
		k.mu.Lock()
		if pr := k.progress; pr != nil {
			pr.Error, pr.Status = err.Error(), "waiting to try again"
		}
		k.mu.Unlock()
		k.node.Changed()
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// Prune removes the builds of other versions than keep and the one the
// node runs.
func (k *Keeper) Prune(keep string) {
	for _, b := range k.cfg.Store.Prune(keep, k.cfg.WantedVersion()) {
		k.log.Info("removed an unused llama.cpp build", "build", b.Name(), "dir", b.Dir)
	}
}

// Install provisions version for whoever needs it, showing the progress in
// the status.
func (k *Keeper) Install(ctx context.Context, version, forWhom string) (runtimes.Build, error) {
	c := k.cfg
	client, err := runtimes.NewClient(c.Releases, c.UserAgent)
	if err != nil {
		return runtimes.Build{}, err
	}
	k.mu.Lock()
	k.progress = &nodestate.Provisioning{Version: version, For: forWhom, Status: "looking for it"}
	k.mu.Unlock()
	k.node.Changed()
	last := time.Time{}
	res, err := c.Store.Install(ctx, runtimes.InstallOptions{
		Version: version, Backend: c.Backend, Hardware: k.node.Hardware(),
		Releases: client, ReleasesGiven: c.Releases != "",
		Debian: engine.InstallOptions{Mirror: c.Mirror},
		Fetching: func(backend string, bytes int64) {
			k.mu.Lock()
			if pr := k.progress; pr != nil {
				pr.Backend, pr.Total = backend, bytes
			}
			k.mu.Unlock()
		},
		Progress: func(p runtimes.Progress) {
			k.mu.Lock()
			if pr := k.progress; pr != nil {
				pr.Status = p.Status
				if p.Total > 0 {
					pr.Completed = p.Completed
				}
			}
			k.mu.Unlock()
			if p.Total == 0 || time.Since(last) > 250*time.Millisecond || p.Completed == p.Total {
				last = time.Now()
				if p.Total == 0 {
					k.log.Info("llama.cpp: " + p.Status)
				}
				k.node.Changed()
			}
		},
	})
	if err != nil {
		return runtimes.Build{}, err
	}
	k.mu.Lock()
	if pr := k.progress; pr != nil {
		pr.Backend = res.Build.Backend
	}
	k.mu.Unlock()
	if res.Fetched {
		k.log.Info("llama.cpp provisioned", "build", res.Build.Name(), "for", forWhom, "why", res.Choice.Why, "dir", res.Build.Dir)
	}
	return res.Build, nil
}

// Wait waits until llama.cpp is found or fetched at the start (a tray can
// ask before the probe of the one found has ended), and says why there is
// none if there is none.
func (k *Keeper) Wait(ctx context.Context) error {
	select {
	case <-k.ready:
	case <-ctx.Done():
		return ctx.Err()
	}
	return k.Err()
}

// Err is why the node has no llama.cpp; nil when it has one.
func (k *Keeper) Err() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.err
}

// Runtime is the node's llama.cpp, its versions, or why there is none.
func (k *Keeper) Runtime() (engine.Runtime, engine.Versions, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.runtime, k.versions, k.err
}

// Status is the llama.cpp part of the node's status.
func (k *Keeper) Status() nodestate.EngineStatus {
	k.mu.Lock()
	st := nodestate.EngineStatus{Available: k.err == nil, Runtime: k.runtime,
		Server: k.versions.Server, Build: k.versions.Build, RPCProtocol: k.versions.RPCProtocol,
		Release: k.versions.Release, Wanted: k.cfg.WantedVersion()}
	if k.err != nil {
		st.Error = k.err.Error()
	}
	if k.progress != nil {
		p := *k.progress
		st.Provisioning = &p
	}
	k.mu.Unlock()
	if k.cfg.Store.Dir != "" {
		for _, b := range k.cfg.Store.Installed() {
			st.Installed = append(st.Installed, b.Name())
		}
	}
	return st
}

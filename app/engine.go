package app

import (
	"context"
	"path/filepath"

	"github.com/potluck-gpu/potluck/engine"
	"github.com/potluck-gpu/potluck/hw"
	"github.com/potluck-gpu/potluck/llama"
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

// newKeeper prepares the keeper of the node's llama.cpp.
func (n *Node) newKeeper() *llama.Keeper {
	c := n.cfg.Engine
	return llama.New(llama.Config{Locator: n.cfg.Llama, Store: runtimes.Store{Dir: n.cfg.Llama.ProvisionDir},
		Version: c.Version, Backend: c.Backend, Releases: c.Releases, Mirror: c.Mirror, NoFetch: c.NoFetch,
		Confinement: n.confinement(), Launcher: c.Launcher, NoSandbox: c.NoSandbox,
		UserAgent: "potluck/" + Version, Log: n.log}, keeperNode{n})
}

// keeperNode is the node as its llama.cpp keeper tells it things.
type keeperNode struct{ n *Node }

func (k keeperNode) Warn(w nodestate.Warning) { k.n.warn(w) }
func (k keeperNode) ClearWarning(code string) { k.n.clearWarning(code) }
func (k keeperNode) Changed()                 { k.n.events.publish(nodestate.Event{Kind: nodestate.EventStatus}) }

func (k keeperNode) Hardware() *hw.Report {
	k.n.mu.Lock()
	defer k.n.mu.Unlock()
	return k.n.hwReport
}

// engineArrived puts a llama.cpp that arrived after the start to work.
func (n *Node) engineArrived(ctx context.Context) {
	n.listDevices(ctx)
	n.publishInfo()
	if h := n.modelHost(); h != nil {
		h.Kick()
	}
}

func (n *Node) engineRuntime() (engine.Runtime, engine.Versions, error) { return n.llama.Runtime() }

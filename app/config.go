// Package app is Potluck's composition root: it builds the engine, the mesh,
// the hardware probe and the HTTP server from one Config and owns the node's
// life. It knows nothing of Fyne; the tray drives it like any other client.
package app

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/potluck-gpu/potluck/engine"
	"github.com/potluck-gpu/potluck/library"
	"github.com/potluck-gpu/potluck/nodestate"
	"github.com/potluck-gpu/potluck/worker"
)

// Version is the application version, set at build time with
// -ldflags "-X github.com/potluck-gpu/potluck/app.Version=…".
var Version = "0.1.0-dev"

// Config is everything a node needs, with defaults from DefaultConfig. Main
// fills it from flags and environment; nothing below main reads either.
type Config struct {
	DataDir string // settings, identity, logs
	// CacheDir keeps what is measured once per machine rather than at
	// every start (the memory bandwidth); empty: nothing is kept, and
	// every start measures again, in the background.
	CacheDir string
	Name     string // display name; default the host name

	API          string   // listen address of the HTTP API
	APIKey       string   // required when API is not loopback; grants /v1 and reading status
	AdminKey     string   // lets remote clients use the admin endpoints; empty: loopback only
	CORSOrigin   string   // a browser origin allowed to use /v1 and read status
	AllowedHosts []string // more names the API answers to, besides loopback and the --api host
	// OllamaAPI is the listen address of the Ollama-compatible API;
	// empty: none (Ollama itself may use its port).
	OllamaAPI string

	// Model is the model to serve: a GGUF path, a library name or a
	// Hugging Face reference (pulled first); empty: serve none.
	Model   string
	CtxSize int
	Threads int
	// Embeddings serves /v1/embeddings from a chat model too (embedding
	// and rerank models serve theirs anyway).
	Embeddings bool
	// Draft is the draft model for speculative decoding: "auto": the
	// library's smallest model of the same tokenizer, for a split over
	// machines or where the plan predicts a gain; "none"; or a model's
	// name or path. Empty: the choice saved from a user interface, else
	// auto.
	Draft string
	// DraftMax and DraftMin are the most and fewest tokens drafted at a
	// time; 0: llama.cpp's defaults (3 and 0).
	DraftMax int
	DraftMin int

	Llama  engine.Locator // where to find llama.cpp
	Engine EngineConfig   // which llama.cpp to run, and how to get it

	// Models.
	ModelRoots []library.Root // where to look for models; nil: Potluck's store only
	HFEndpoint string         // the Hugging Face endpoint (HF_ENDPOINT); empty: the default
	HFToken    string         // HF_TOKEN, for gated repositories

	// The mesh.
	Token       string        // invite token; empty: rejoin the saved mesh, if any
	Bootstrap   []string      // multiaddrs of peers to connect to first
	P2PListen   []string      // libp2p listen multiaddrs; empty: all interfaces, random port
	NoDHT       bool          // no DHT discovery (LAN and bootstrap only)
	NoMDNS      bool          // no mDNS discovery
	NoTraversal bool          // no AutoNAT, relays or hole punching
	NoPortMap   bool          // no UPnP / NAT-PMP port mapping
	P2PLimits   bool          // libp2p connection/resource limits on
	P2PLogLevel string        // EdgeVPN/libp2p log level
	Heartbeat   time.Duration // announce interval; 0: the mesh default

	// Sharing.
	Share       nodestate.ShareMode // off, worker or server; empty: the saved choice
	ShareMemory uint64              // cap on the memory offered; 0: the default policy
	ShareLimit  uint64              // tokens a day this node's model serves each peer; 0: no limit
	// LendTo is whom the shard worker serves: "all", or member names
	// and peer ids separated by commas; empty: the saved choice.
	LendTo string
	// ReserveMemory is the system memory the node's own model leaves to
	// everything else; 0: the default (4 GiB).
	ReserveMemory uint64
	Split         engine.SplitMode // fit or all

	// Models on demand.
	// KeepAlive is how long a model loaded on request stays after its
	// last request; 0: sched.DefaultKeepAlive; sched.NoKeepAlive: none;
	// sched.Forever: until unloaded.
	KeepAlive time.Duration
	// MaxLoadedModels is how many models may be loaded at once; 0:
	// sched.DefaultMaxLoaded.
	MaxLoadedModels int
	// ModelsMemory caps the memory the models loaded here take together;
	// 0: what the planner offers a model on this machine.
	ModelsMemory uint64
	// NoPeerLoads keeps a server from loading models for members'
	// requests: it serves them only what it has loaded.
	NoPeerLoads bool
	// Devices restricts the node to these of llama.cpp's devices (e.g.
	// "CUDA0", "Vulkan0", "CPU"), for what it serves and what it lends;
	// empty: every device that makes a plan faster.
	Devices    []string
	HWInterval time.Duration // hardware re-probe interval; 0: the default
}

// DefaultConfig returns the defaults: data in the OS config directory, the
// API on 127.0.0.1:8080.
func DefaultConfig() Config {
	host, _ := os.Hostname()
	return Config{
		DataDir:  DefaultDataDir(),
		CacheDir: DefaultCacheDir(),
		Name:     host,
		API:      "127.0.0.1:8080",
		CtxSize:  2048,
		Split:    engine.SplitFit,
		Llama: engine.Locator{
			ProvisionDir: engine.DefaultProvisionDir(),
		},
	}
}

// DefaultDataDir is the per-user config directory for Potluck.
func DefaultDataDir() string {
	dir, err := os.UserConfigDir()
	if err != nil {
		home, _ := os.UserHomeDir()
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "potluck")
}

// DefaultCacheDir is the per-user cache directory for Potluck, beside the
// llama.cpp builds it provisions; "" where the OS has none.
func DefaultCacheDir() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "potluck")
}

// Check validates the configuration and says what to change.
func (c Config) Check() error {
	if c.DataDir == "" {
		return fmt.Errorf("no data directory: set --data-dir")
	}
	if c.CtxSize < 0 {
		return fmt.Errorf("--ctx-size %d: must be positive", c.CtxSize)
	}
	if c.Threads < 0 {
		return fmt.Errorf("--threads %d: must be positive", c.Threads)
	}
	if c.Share != "" {
		if _, ok := nodestate.ParseShareMode(string(c.Share)); !ok {
			return fmt.Errorf("--share %q: want off, worker or server", c.Share)
		}
	}
	if _, err := worker.ParseLendTo(c.LendTo); err != nil {
		return fmt.Errorf("--lend-to %w", err)
	}
	if c.Model != "" {
		if fi, err := os.Stat(c.Model); err == nil && fi.IsDir() {
			return fmt.Errorf("--model %s is a directory: give the path of a .gguf file, or add the directory with --models-dir", c.Model)
		}
	}
	return nil
}

// ModelAlias is the id a model file is served under: its base name without
// the .gguf extension.
func ModelAlias(path string) string {
	return strings.TrimSuffix(filepath.Base(path), ".gguf")
}

package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/potluck-gpu/potluck/engine"
	"github.com/potluck-gpu/potluck/hub"
	"github.com/potluck-gpu/potluck/hw"
	"github.com/potluck-gpu/potluck/ledger"
	"github.com/potluck-gpu/potluck/library"
	"github.com/potluck-gpu/potluck/members"
	"github.com/potluck-gpu/potluck/netmesh"
	"github.com/potluck-gpu/potluck/server"
)

// Node is one running Potluck node. It implements Controller.
type Node struct {
	cfg    Config
	log    *slog.Logger
	logs   *logRing
	events bus

	started time.Time
	srv     *server.Server

	opMu    sync.Mutex // serializes Join, Leave and Share
	serveMu sync.Mutex // serializes Serve

	mu       sync.Mutex
	runCtx   context.Context    // the context of Run; nil before
	quit     context.CancelFunc // ends Run
	runtime  engine.Runtime
	versions engine.Versions
	engErr   error // why llama.cpp is unavailable
	// provisioning is llama.cpp being fetched; nil when none is.
	provisioning *Provisioning
	engReady     chan struct{} // closed once llama.cpp is found, fetched, or known to be missing
	lend         *lendRuntime  // the worker's llama.cpp when it matches a head's; nil: the node's own
	matching     bool          // a match to the heads' llama.cpp is under way
	settings     Settings
	joining      bool
	mesh         *meshSession    // nil when in no mesh
	retired      []*meshSession  // networks left behind, still handing out a removal
	applied      map[string]bool // removals carried out, by members.ID
	roll         *members.Roll

	worker   *workerProc // non-nil while sharing as a worker
	host     *modelHost  // non-nil when a model is configured
	hwReport *hw.Report
	warnings map[string]Warning

	engDevices    []engine.Device // what llama.cpp sees, listed at start
	hostBandwidth float64         // bytes a second, measured at start

	rejectedBefore atomic.Uint64 // mesh messages rejected by closed sessions
	gateRefusals   refusals      // what the RPC gate refused, by reason and member

	lib         *library.Library
	ledger      *ledger.Ledger  // the pool's accounts
	swarmAddr   string          // the loopback address of the model file server
	swarmSent   atomic.Uint64   // model file bytes sent to peers
	swarmClient *http.Client    // fetches model files from peers
	seeded      map[string]bool // files whose tensors the worker's cache holds, by sha256
	seeding     bool            // a seeding is under way
	hub         *hub.Client
	pulls       keyedMutex    // one pull of a file at a time
	hashNow     chan struct{} // asks for checksums of new models
	peerModels  peerModels    // what peers' models do
}

var _ Controller = (*Node)(nil)

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
	settings, err := LoadSettings(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	ring := &logRing{max: 200}
	roll, rollErr := members.Open(cfg.DataDir)
	if roll == nil {
		return nil, rollErr
	}
	n := &Node{
		cfg:      cfg,
		logs:     ring,
		log:      slog.New(teeHandler{next: log.Handler(), ring: ring}),
		started:  time.Now(),
		settings: settings,
		engReady: make(chan struct{}),
		warnings: map[string]Warning{},
		applied:  map[string]bool{},
		roll:     roll,
		hub:      hub.NewClient(cfg.HFEndpoint, cfg.HFToken, "potluck/"+Version),
		hashNow:  make(chan struct{}, 1),
		seeded:   map[string]bool{},
		swarmClient: &http.Client{Transport: &http.Transport{
			ResponseHeaderTimeout: 30 * time.Second,
			MaxIdleConnsPerHost:   4,
		}},
	}
	if cfg.Llama.Provisioned == nil && cfg.Llama.ProvisionDir != "" {
		n.cfg.Llama.Provisioned = n.provisioned
	}
	roots := cfg.ModelRoots
	if roots == nil {
		roots = []library.Root{{Source: library.SourcePotluck, Dir: library.StoreDir(cfg.DataDir)}}
	}
	n.lib = library.New(roots, filepath.Join(cfg.DataDir, "library.json"), n.log.With("part", "library"))
	if n.ledger, err = ledger.Open(cfg.DataDir); err != nil {
		// Keep the file for the user to look at; count in memory.
		n.log.Warn("the ledger cannot be read; this run keeps its accounts in memory only", "err", err)
		n.ledger, _ = ledger.Open("")
	}
	if rollErr != nil {
		n.log.Warn("member list", "err", rollErr)
	}
	srv, err := server.New(server.Config{
		Addr: cfg.API, APIKey: cfg.APIKey, AdminKey: cfg.AdminKey, CORSOrigin: cfg.CORSOrigin,
		AllowedHosts: cfg.AllowedHosts,
		OllamaAddr:   cfg.OllamaAPI,
		Version:      Version,
		WaitReady:    20 * time.Second,
		OnRequest:    n.onRequest,
	}, n, apiNode{n}, n.log.With("part", "api"))
	if err != nil {
		return nil, err
	}
	n.srv = srv
	model := cfg.Model
	if model == "" {
		model = settings.Model // chosen in a user interface before
	}
	if model != "" {
		if err := n.checkModelName(model); err != nil {
			if cfg.Model != "" {
				return nil, fmt.Errorf("--model: %w", err)
			}
			n.log.Warn("the model chosen before is gone; serving none", "err", err)
		} else {
			n.host = newModelHost(n, model)
		}
	}
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

// Run runs the node until ctx ends, then stops everything it started.
func (n *Node) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	n.mu.Lock()
	n.runCtx, n.quit = ctx, cancel
	n.mu.Unlock()

	fetch := n.findEngine(ctx)
	if n.cfg.Model != "" && !fetch {
		if err := n.engineError(); err != nil {
			return err
		}
	}
	n.probeHardware(ctx)
	n.listDevices(ctx)

	var wg sync.WaitGroup
	errc := make(chan error, 4)
	spawn := func(f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil {
				errc <- err
			}
		}()
	}
	spawn(func() error { return n.srv.Run(ctx) })
	spawn(func() error { return n.watchHardware(ctx) })
	spawn(func() error { return n.publishLoad(ctx) })
	spawn(func() error { return n.keepRoll(ctx) })
	spawn(func() error { return n.hashModels(ctx) })
	spawn(func() error { return n.runSwarm(ctx) })
	spawn(func() error { return n.keepLedger(ctx) })
	if fetch {
		spawn(func() error { n.fetchEngine(ctx); return nil })
	}
	if h := n.modelHost(); h != nil {
		n.startHost(ctx, h)
	}
	if err := n.resume(ctx); err != nil {
		cancel()
		wg.Wait()
		n.shutdown()
		return err
	}

	var first error
	select {
	case <-ctx.Done():
	case first = <-errc:
	}
	cancel()
	n.shutdown()
	wg.Wait()
	return first
}

// Quit stops the node: Run ends as when its context is cancelled.
func (n *Node) Quit() {
	n.mu.Lock()
	quit := n.quit
	n.mu.Unlock()
	if quit != nil {
		n.log.Info("asked to quit")
		quit()
	}
}

// resume joins the mesh and shares as configured, or as saved last time.
func (n *Node) resume(ctx context.Context) error {
	token, saved := n.cfg.Token, false
	canon, _ := splitInvite(token)
	switch {
	case token == "":
		token, saved = n.settings.Token, true
	case n.settings.movedFrom(canon):
		n.log.Warn("the network's owner moved it to a new token since; using the new one (update --token, --token-file or POTLUCK_P2P_TOKEN)")
		token = n.settings.Token
	}
	share := n.cfg.Share
	if share == "" {
		share = n.settings.Share
	}
	memory := n.cfg.ShareMemory
	if memory == 0 {
		memory = n.settings.ShareMemory
	}
	if token != "" {
		if err := n.Join(ctx, token); err != nil {
			if !saved {
				return err
			}
			// Never let sharing start a new network in its place: keep
			// trying the saved one, and share once it is back.
			n.warn(Warning{Code: "saved-mesh", Severity: SeverityWarning, Message: "cannot reach your network (" + err.Error() + "); trying again"})
			go n.rejoin(ctx, token, share, memory)
			return nil
		}
		if tok, err := netmesh.ParseToken(token); err == nil && tok.Fingerprint() == n.settings.RemovedFrom {
			n.warnRemoved()
		}
		n.resumeHandoffs(ctx)
	}
	return n.resumeSharing(ctx, share, memory)
}

// resumeSharing shares as asked on the command line, or as saved. A saved
// mode that cannot run now starts with sharing off and says why.
func (n *Node) resumeSharing(ctx context.Context, share ShareMode, memory uint64) error {
	if share == "" || share == ShareOff {
		return nil
	}
	err := n.Share(ctx, share, memory)
	if err == nil || n.cfg.Share != "" {
		return err
	}
	n.mu.Lock()
	n.settings.Share = ShareOff
	n.mu.Unlock()
	n.warn(Warning{Code: "saved-share", Severity: SeverityWarning,
		Message: fmt.Sprintf("sharing is off: the saved choice, %s, cannot start (%v)", share, err)})
	n.log.Warn("saved sharing mode cannot start; sharing is off", "mode", share, "err", err)
	return nil
}

// rejoin keeps trying the saved network, backing off up to two minutes,
// and shares as saved once it is back.
func (n *Node) rejoin(ctx context.Context, token string, share ShareMode, memory uint64) {
	for wait := 5 * time.Second; ; wait = min(2*wait, 2*time.Minute) {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		if n.currentMesh() != nil {
			return // joined another network meanwhile
		}
		err := n.Join(ctx, token)
		if err != nil {
			n.warn(Warning{Code: "saved-mesh", Severity: SeverityWarning, Message: "cannot reach your network (" + err.Error() + "); trying again"})
			continue
		}
		n.clearWarning("saved-mesh")
		n.resumeHandoffs(ctx)
		if err := n.resumeSharing(ctx, share, memory); err != nil {
			n.warn(Warning{Code: "saved-share", Severity: SeverityWarning, Message: "could not share as before: " + err.Error()})
		}
		return
	}
}

// publishLoad re-announces the requests in flight when they change, so
// peers routing to this node see its load.
func (n *Node) publishLoad(ctx context.Context) error {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	last := 0
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if cur := n.servedInFlight(); cur != last {
				last = cur
				n.publishInfo()
			}
		}
	}
}

// shutdown stops the worker and leaves the mesh.
func (n *Node) shutdown() {
	n.serveMu.Lock()
	if h := n.modelHost(); h != nil {
		h.stop() // before opMu: a host that just got ready takes it
	}
	n.serveMu.Unlock()
	n.opMu.Lock()
	defer n.opMu.Unlock()
	n.stopWorker()
	n.stopMesh()
	n.closeRetired()
}

// warn records a warning (replacing one with the same code) and tells
// subscribers.
func (n *Node) warn(w Warning) {
	n.mu.Lock()
	old, had := n.warnings[w.Code]
	n.warnings[w.Code] = w
	n.mu.Unlock()
	if !had || old != w {
		n.events.publish(Event{Kind: EventWarning, Warning: &w, Message: w.Message})
	}
}

func (n *Node) clearWarning(code string) {
	n.mu.Lock()
	_, had := n.warnings[code]
	delete(n.warnings, code)
	n.mu.Unlock()
	if had {
		n.events.publish(Event{Kind: EventStatus})
	}
}

// Status is the document behind GET /api/status.
type Status struct {
	Name    string    `json:"name"`
	Version string    `json:"version"`
	UptimeS int64     `json:"uptime_s"`
	State   NodeState `json:"state"`
	API     string    `json:"api"` // the OpenAI base URL, e.g. http://127.0.0.1:8080/v1

	Share         ShareMode `json:"share"`
	MemoryOffered uint64    `json:"memory_offered"`
	// ShareLimit is the tokens a day each peer may use of this node's
	// model (0: no limit).
	ShareLimit uint64 `json:"share_limit,omitempty"`
	// LendTo are the members (names or peer ids) the shard worker
	// serves, as chosen; empty: every member.
	LendTo []string `json:"lend_to,omitempty"`

	InMesh bool `json:"in_mesh"`
	// Network is the fingerprint of the network's token: two nodes show
	// the same exactly when they hold the same token.
	Network     string   `json:"network,omitempty"`
	PeerID      string   `json:"peer_id,omitempty"`
	P2PAddrs    []string `json:"p2p_addrs,omitempty"`
	PeersOnline int      `json:"peers_online"`
	// Reachability says whether members across the internet can dial
	// this node directly: "public", "private" (behind a NAT: reached
	// through relays and hole punching) or "unknown" (not yet asked).
	Reachability string `json:"reachability,omitempty"`

	Engine EngineStatus `json:"engine"`
	// Devices are this node's devices and what each offers; those the
	// user left out are marked unused.
	Devices []DeviceInfo `json:"devices"`
	// DeviceChoice is the user's choice of devices; empty: automatic.
	DeviceChoice []string     `json:"device_choice,omitempty"`
	Model        *ModelStatus `json:"model,omitempty"`
	Worker       *WorkerState `json:"worker,omitempty"`
	Hardware     *hw.Report   `json:"hardware,omitempty"`
	Offer        *hw.Offer    `json:"offer,omitempty"`
	InFlight     int          `json:"in_flight"`
	Warnings     []Warning    `json:"warnings,omitempty"`
}

// EngineStatus describes llama.cpp on this node.
type EngineStatus struct {
	Available   bool           `json:"available"`
	Error       string         `json:"error,omitempty"`
	Runtime     engine.Runtime `json:"runtime"`
	Server      string         `json:"server_version,omitempty"`
	Build       string         `json:"build,omitempty"`
	RPCProtocol string         `json:"rpc_protocol,omitempty"`
	// Release is the llama.cpp release running, e.g. "0.7.0"; Wanted the
	// one this Potluck runs everywhere.
	Release string `json:"release,omitempty"`
	Wanted  string `json:"wanted_release"`
	// Installed lists the builds provisioned on this machine, e.g.
	// "0.7.0 (Debian)", "0.5.0 (cpu)": at most two versions.
	Installed []string `json:"installed,omitempty"`
	// Provisioning is llama.cpp being fetched, with its progress.
	Provisioning *Provisioning `json:"provisioning,omitempty"`
}

// ModelStatus describes the model this node serves.
type ModelStatus struct {
	ID     string        `json:"id"`
	Path   string        `json:"path"`
	Ready  bool          `json:"ready"`
	State  engine.Status `json:"state"`
	Detail string        `json:"detail,omitempty"` // e.g. why it waits
	Nodes  int           `json:"nodes"`            // machines holding it
	// Holders is the current plan: which device of which machine holds
	// how many layers.
	Holders []Holder `json:"holders,omitempty"`
	// TokensPerSecond is the plan's predicted decoding speed.
	TokensPerSecond float64 `json:"tokens_per_second,omitempty"`
	// Excluded names the workers left out of the plan, with the reason.
	Excluded []string `json:"excluded,omitempty"`
}

// Holder is one device's part of a split model.
type Holder struct {
	Name   string `json:"name"`   // the machine
	Device string `json:"device"` // its device, e.g. "CUDA0", "CPU"
	Local  bool   `json:"local"`
	Layers int    `json:"layers"`
	Bytes  uint64 `json:"bytes"`
	// Share is its part of the time per token, 0 to 1.
	Share float64 `json:"share"`
}

// WorkerState describes this node's RPC worker.
type WorkerState struct {
	Addr  string        `json:"addr"`
	State engine.Status `json:"state"`
	// Release is the llama.cpp release the worker runs, and Matches the
	// head whose version it runs when that is not this node's own.
	Release string `json:"release,omitempty"`
	Matches string `json:"matches,omitempty"`
}

// Status returns a snapshot of the node.
func (n *Node) Status() Status {
	offer := n.offer()
	all := n.allDevices()
	devs := slices.DeleteFunc(slices.Clone(all), func(d DeviceInfo) bool { return d.Unused })
	n.mu.Lock()
	st := Status{
		Name: n.cfg.Name, Version: Version, UptimeS: int64(time.Since(n.started).Seconds()),
		State: StateIdle, Share: n.shareLocked(),
		API: "http://" + n.apiAddr() + "/v1",
		Engine: EngineStatus{Available: n.engErr == nil, Runtime: n.runtime,
			Server: n.versions.Server, Build: n.versions.Build, RPCProtocol: n.versions.RPCProtocol,
			Release: n.versions.Release, Wanted: n.cfg.Engine.version()},
		Hardware:     n.hwReport,
		InFlight:     n.srv.InFlight(),
		Devices:      all,
		DeviceChoice: slices.Clone(n.deviceChoiceLocked()),
	}
	if n.engErr != nil {
		st.Engine.Error = n.engErr.Error()
	}
	if n.provisioning != nil {
		p := *n.provisioning
		st.Engine.Provisioning = &p
	}
	if n.hwReport != nil {
		st.Offer = &offer
	}
	st.ShareLimit = n.shareLimitLocked()
	st.LendTo = n.lendToLocked()
	if st.Share != ShareOff {
		st.MemoryOffered = offerTotal(lent(devs, n.deviceChoiceLocked()))
	}
	mesh, worker, host, joining := n.mesh, n.worker, n.host, n.joining
	for _, w := range n.warnings {
		st.Warnings = append(st.Warnings, w)
	}
	n.mu.Unlock()
	sort.Slice(st.Warnings, func(i, j int) bool { return st.Warnings[i].Code < st.Warnings[j].Code })
	if n.cfg.Llama.ProvisionDir != "" {
		for _, b := range n.store().Installed() {
			st.Engine.Installed = append(st.Engine.Installed, b.Name())
		}
	}

	if mesh != nil {
		st.InMesh, st.PeerID, st.P2PAddrs = true, mesh.node.ID(), mesh.node.Addrs()
		st.Reachability = mesh.node.Reachability()
		st.Network = mesh.tok.Fingerprint()
		for _, p := range mesh.node.Peers() {
			if p.Online {
				st.PeersOnline++
			}
		}
	}
	if worker != nil {
		st.Worker = &WorkerState{Addr: worker.addr, State: worker.sup.Status(), Release: worker.versions.Release, Matches: worker.matches}
		st.State = StateSharing
	}
	if host != nil {
		st.Model = host.status()
		if st.Model.Ready {
			st.State = StateServing
		}
	}
	if joining {
		st.State = StateJoining
	}
	for _, w := range st.Warnings {
		if w.Severity == SeverityError {
			st.State = StateError
		}
	}
	return st
}

// apiAddr is the address the API listens on, once it does.
func (n *Node) apiAddr() string {
	if addr := n.srv.Addr(); addr != nil {
		return addr.String()
	}
	return n.cfg.API
}

// Logs implements Controller.
func (n *Node) Logs(max int) []string { return n.logs.last(max) }

// Subscribe implements Controller.
func (n *Node) Subscribe() (<-chan Event, func()) { return n.events.subscribe() }

// Recent implements Controller.
func (n *Node) Recent() []Request {
	var out []Request
	for _, r := range n.srv.Recent() {
		out = append(out, Request{Time: r.Time, Model: r.Model, Node: r.Node, Status: r.Status, Duration: r.Duration})
	}
	return out
}

func (n *Node) onRequest(r server.RequestRecord) {
	n.events.publish(Event{Kind: EventRequest, Time: r.Time, Message: fmt.Sprintf("%s served by %s (%d)", r.Model, r.Node, r.Status)})
}

// logPath is where a child's output goes.
func (n *Node) logPath(name string) string {
	dir := filepath.Join(n.cfg.DataDir, "logs")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return ""
	}
	return filepath.Join(dir, name+".log")
}

// InputError is a bad value from the user, phrased for them.
type InputError struct {
	Field, Value, Msg string
}

func (e *InputError) Error() string {
	if e.Value == "" {
		return fmt.Sprintf("%s: %s", e.Field, e.Msg)
	}
	return fmt.Sprintf("%s %q: %s", e.Field, e.Value, e.Msg)
}

// InvalidInput marks the error as the client's (HTTP 400).
func (e *InputError) InvalidInput() bool { return true }

var errNoMesh = errors.New("this computer is in no network yet: share it, or join a network with a friend's invite token")

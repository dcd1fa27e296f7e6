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
	"github.com/potluck-gpu/potluck/host"
	"github.com/potluck-gpu/potluck/hub"
	"github.com/potluck-gpu/potluck/hw"
	"github.com/potluck-gpu/potluck/ledger"
	"github.com/potluck-gpu/potluck/library"
	"github.com/potluck-gpu/potluck/llama"
	"github.com/potluck-gpu/potluck/members"
	"github.com/potluck-gpu/potluck/netmesh"
	"github.com/potluck-gpu/potluck/nodestate"
	"github.com/potluck-gpu/potluck/route"
	"github.com/potluck-gpu/potluck/sched"
	"github.com/potluck-gpu/potluck/server"
	"github.com/potluck-gpu/potluck/settings"
	"github.com/potluck-gpu/potluck/worker"
)

// Node is one running Potluck node. It implements tray.Controller and server.Node.
type Node struct {
	cfg    Config
	log    *slog.Logger
	logs   *logRing
	events bus

	started time.Time
	srv     *server.Server

	opMu    sync.Mutex // serializes Join, Leave and Share
	serveMu sync.Mutex // serializes Serve

	mu        sync.Mutex
	runCtx    context.Context    // the context of Run; nil before
	quit      context.CancelFunc // ends Run
	llama     *llama.Keeper      // the llama.cpp this node runs, and its worker
	matching  bool               // a match to the heads' llama.cpp is under way
	settings  *settings.Store    // the user's choices: every change is a Modify
	shareHeld bool               // the saved share mode could not start: off for this run
	joining   bool
	mesh      *meshSession    // nil when in no mesh
	retired   []*meshSession  // networks left behind, still handing out a removal
	applied   members.Applied // removals carried out
	roll      *members.Roll

	worker   *worker.Worker // non-nil while sharing as a worker
	host     *host.Host     // non-nil when a model is configured
	hwReport *hw.Report
	warnings map[string]nodestate.Warning

	engDevices    []engine.Device   // what llama.cpp sees, listed at start
	bandwidth     hw.BandwidthCache // where the memory bandwidth is kept between starts
	hostBandwidth float64           // bytes a second; 0 until known, and the planner assumes a default

	rejectedBefore atomic.Uint64   // mesh messages rejected by closed sessions
	gateRefusals   worker.Refusals // what the RPC gate refused, by reason and member

	lib         *library.Library
	ledger      *ledger.Ledger // the pool's accounts
	swarmAddr   string         // the loopback address of the model file server
	swarmSent   atomic.Uint64  // model file bytes sent to peers
	swarmClient *http.Client   // fetches model files from peers
	seeder      worker.Seeder  // fills the worker's tensor cache from files here
	hub         *hub.Client
	puller      *library.Puller  // gets models from peers or the hub
	hashNow     chan struct{}    // asks for checksums of new models
	router      *route.Router    // which nodes serve which model
	sched       *sched.Scheduler // loads models on request, beside the one served
	frontAddr   string           // the loopback door of members' requests to the models here
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
	st, err := settings.Open(cfg.DataDir)
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
		settings: st,
		warnings: map[string]nodestate.Warning{},
		roll:     roll,
		hub:      hub.NewClient(cfg.HFEndpoint, cfg.HFToken, "potluck/"+Version),
		hashNow:  make(chan struct{}, 1),
		swarmClient: &http.Client{Transport: &http.Transport{
			ResponseHeaderTimeout: 30 * time.Second,
			MaxIdleConnsPerHost:   4,
		}},
	}
	if cfg.CacheDir != "" {
		n.bandwidth.Path = filepath.Join(cfg.CacheDir, hw.BandwidthFile)
	}
	n.seeder.CacheBase, n.seeder.Log = n.rpcCache(), n.log
	n.llama = n.newKeeper()
	roots := cfg.ModelRoots
	if roots == nil {
		roots = []library.Root{{Source: library.SourcePotluck, Dir: library.StoreDir(cfg.DataDir)}}
	}
	n.lib = library.New(roots, filepath.Join(cfg.DataDir, "library.json"), n.log.With("part", "library"))
	n.puller = n.newPuller()
	if n.ledger, err = ledger.Open(cfg.DataDir); err != nil {
		// Keep the file for the user to look at; count in memory.
		n.log.Warn("the ledger cannot be read; this run keeps its accounts in memory only", "err", err)
		n.ledger, _ = ledger.Open("")
	}
	for code, r := range map[string]string{"damaged-settings": st.Recovered(), "damaged-ledger": n.ledger.Recovered()} {
		if r != "" {
			n.log.Warn(r)
			n.warn(nodestate.Warning{Code: code, Severity: nodestate.SeverityWarning, Message: r})
		}
	}
	if rollErr != nil {
		n.log.Warn("member list", "err", rollErr)
	}
	n.sched = n.newScheduler()
	local := &localModels{lib: n.lib}
	n.router = route.New(route.Config{Name: cfg.Name, Service: serviceOpenAI, Client: n.swarmClient, Log: n.log,
		Sched: n.sched, Library: local.list, HeadMemory: n.headMemory},
		hostMesh{n}, n.modelHost)
	srv, err := server.New(server.Config{
		Addr: cfg.API, APIKey: cfg.APIKey, AdminKey: cfg.AdminKey, CORSOrigin: cfg.CORSOrigin,
		AllowedHosts: cfg.AllowedHosts,
		OllamaAddr:   cfg.OllamaAPI,
		Version:      Version,
		WaitReady:    20 * time.Second,
		OnRequest:    n.onRequest,
	}, n.router, apiNode{n}, n.log.With("part", "api"))
	if err != nil {
		return nil, err
	}
	n.srv = srv
	model := cfg.Model
	if model == "" {
		model = st.Get().Model // chosen in a user interface before
	}
	if model != "" {
		if err := n.checkModelName(model); err != nil {
			if cfg.Model != "" {
				return nil, fmt.Errorf("--model: %w", err)
			}
			n.log.Warn("the model chosen before is gone; serving none", "err", err)
		} else {
			n.host = n.newHost(model)
			n.pin(n.host)
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

	fetch := n.llama.Find(ctx)
	if n.cfg.Model != "" && !fetch {
		if err := n.llama.Err(); err != nil {
			return err
		}
	}
	unmeasured := n.probeHardware(ctx)
	n.listDevices(ctx)
	if err := n.checkStartDevices(); err != nil {
		return err
	}

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
	if unmeasured != nil {
		spawn(func() error { n.learnBandwidth(ctx, *unmeasured); return nil })
	}
	spawn(func() error { return n.watchHardware(ctx) })
	spawn(func() error { return n.publishLoad(ctx) })
	spawn(func() error { return n.keepRoll(ctx) })
	spawn(func() error { return n.hashModels(ctx) })
	spawn(func() error { return n.runSwarm(ctx) })
	spawn(func() error { return n.keepLedger(ctx) })
	spawn(func() error { n.announceSettings(ctx); return nil })
	spawn(func() error { n.sched.Run(ctx); return nil })
	if err := n.runFront(ctx); err != nil {
		cancel()
		wg.Wait()
		n.shutdown()
		return err
	}
	if fetch {
		spawn(func() error { n.llama.Fetch(ctx, func() { n.engineArrived(ctx) }); return nil })
	}
	if h := n.modelHost(); h != nil {
		h.Start(ctx)
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
	set := n.settings.Get()
	token, saved := n.cfg.Token, false
	canon, _ := splitInvite(token)
	switch {
	case token == "":
		token, saved = set.Token, true
	case movedFrom(set, canon):
		n.log.Warn("the network's owner moved it to a new token since; using the new one (update --token, --token-file or POTLUCK_P2P_TOKEN)")
		token = set.Token
	}
	share := n.cfg.Share
	if share == "" {
		share = set.Share
	}
	memory := n.cfg.ShareMemory
	if memory == 0 {
		memory = set.ShareMemory
	}
	if token != "" {
		if err := n.Join(ctx, token); err != nil {
			if !saved {
				return err
			}
			// Never let sharing start a new network in its place: keep
			// trying the saved one, and share once it is back.
			n.warn(nodestate.Warning{Code: "saved-mesh", Severity: nodestate.SeverityWarning, Message: "cannot reach your network (" + err.Error() + "); trying again"})
			go n.rejoin(ctx, token, share, memory)
			return nil
		}
		if tok, err := netmesh.ParseToken(token); err == nil && tok.Fingerprint() == set.RemovedFrom {
			n.warnRemoved()
		}
		n.resumeHandoffs(ctx)
	}
	return n.resumeSharing(ctx, share, memory)
}

// resumeSharing shares as asked on the command line, or as saved. A saved
// mode that cannot run now starts with sharing off and says why.
func (n *Node) resumeSharing(ctx context.Context, share nodestate.ShareMode, memory uint64) error {
	if share == "" || share == nodestate.ShareOff {
		return nil
	}
	err := n.Share(ctx, share, memory)
	if err == nil || n.cfg.Share != "" {
		return err
	}
	// Off for this run only: the choice stays saved, for a start that
	// can honour it.
	n.mu.Lock()
	n.shareHeld = true
	n.mu.Unlock()
	n.events.publish(nodestate.Event{Kind: nodestate.EventStatus})
	n.warn(nodestate.Warning{Code: "saved-share", Severity: nodestate.SeverityWarning,
		Message: fmt.Sprintf("sharing is off: the saved choice, %s, cannot start (%v)", share, err)})
	n.log.Warn("saved sharing mode cannot start; sharing is off", "mode", share, "err", err)
	return nil
}

// rejoin keeps trying the saved network, backing off up to two minutes,
// and shares as saved once it is back.
func (n *Node) rejoin(ctx context.Context, token string, share nodestate.ShareMode, memory uint64) {
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
			n.warn(nodestate.Warning{Code: "saved-mesh", Severity: nodestate.SeverityWarning, Message: "cannot reach your network (" + err.Error() + "); trying again"})
			continue
		}
		n.clearWarning("saved-mesh")
		n.resumeHandoffs(ctx)
		if err := n.resumeSharing(ctx, share, memory); err != nil {
			n.warn(nodestate.Warning{Code: "saved-share", Severity: nodestate.SeverityWarning, Message: "could not share as before: " + err.Error()})
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
		h.Stop() // before opMu: a host that just got ready takes it
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
func (n *Node) warn(w nodestate.Warning) {
	n.mu.Lock()
	old, had := n.warnings[w.Code]
	n.warnings[w.Code] = w
	n.mu.Unlock()
	if !had || old != w {
		n.events.publish(nodestate.Event{Kind: nodestate.EventWarning, Warning: &w, Message: w.Message})
	}
}

func (n *Node) clearWarning(code string) {
	n.mu.Lock()
	_, had := n.warnings[code]
	delete(n.warnings, code)
	n.mu.Unlock()
	if had {
		n.events.publish(nodestate.Event{Kind: nodestate.EventStatus})
	}
}

// Status returns a snapshot of the node.
func (n *Node) Status() nodestate.Status {
	offer := n.offer()
	all := n.allDevices()
	devs := slices.DeleteFunc(slices.Clone(all), func(d nodestate.DeviceInfo) bool { return d.Unused })
	eng := n.llama.Status()
	n.mu.Lock()
	st := nodestate.Status{
		Name: n.cfg.Name, Version: Version, UptimeS: int64(time.Since(n.started).Seconds()),
		State: nodestate.StateIdle, Share: n.shareLocked(),
		API:          "http://" + n.apiAddr() + "/v1",
		Engine:       eng,
		Hardware:     n.hwReport,
		InFlight:     n.srv.InFlight(),
		Devices:      all,
		DeviceChoice: slices.Clone(n.deviceChoiceLocked()),
	}
	if n.hwReport != nil {
		st.Offer = &offer
	}
	set := n.settings.Get()
	st.ShareAs, st.ShareMemory = set.ShareAsMode(), set.ShareMemory
	st.ShareLimit = n.shareLimitLocked()
	st.LendTo = n.lendToLocked()
	if st.Share != nodestate.ShareOff {
		st.MemoryOffered = offerTotal(lent(devs, n.deviceChoiceLocked()))
	}
	mesh, wk, mh, joining := n.mesh, n.worker, n.host, n.joining
	for _, w := range n.warnings {
		st.Warnings = append(st.Warnings, w)
	}
	n.mu.Unlock()
	sort.Slice(st.Warnings, func(i, j int) bool { return st.Warnings[i].Code < st.Warnings[j].Code })

	if mesh != nil {
		st.InMesh, st.PeerID, st.P2PAddrs = true, mesh.node.ID(), mesh.node.Addrs()
		st.Reachability = mesh.node.Reachability()
		st.Network = mesh.tok.Fingerprint()
		st.MeshTraffic = meshTraffic(mesh.node.Traffic())
		for _, p := range mesh.node.Peers() {
			if p.Online {
				st.PeersOnline++
			}
		}
	}
	if wk != nil {
		st.Worker = &nodestate.WorkerState{Addr: wk.Addr(), State: wk.Status(), Release: wk.Versions().Release, Matches: wk.Matches()}
		st.State = nodestate.StateSharing
	}
	if mh != nil {
		st.Model = mh.Status()
		if st.Model.Ready {
			st.State = nodestate.StateServing
		}
	}
	st.Loaded = n.loadedModels()
	if joining {
		st.State = nodestate.StateJoining
	}
	for _, w := range st.Warnings {
		if w.Severity == nodestate.SeverityError {
			st.State = nodestate.StateError
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

// Logs implements tray.Controller.
func (n *Node) Logs(max int) []string { return n.logs.last(max) }

// Subscribe implements tray.Controller.
func (n *Node) Subscribe() (<-chan nodestate.Event, func()) { return n.events.subscribe() }

// Recent implements tray.Controller.
func (n *Node) Recent() []nodestate.Request {
	var out []nodestate.Request
	for _, r := range n.srv.Recent() {
		out = append(out, nodestate.Request{Time: r.Time, Model: r.Model, Node: r.Node, Status: r.Status, Duration: r.Duration})
	}
	return out
}

func (n *Node) onRequest(r server.RequestRecord) {
	n.events.publish(nodestate.Event{Kind: nodestate.EventRequest, Time: r.Time, Message: fmt.Sprintf("%s served by %s (%d)", r.Model, r.Node, r.Status)})
}

// logPath is where a child's output goes.
func (n *Node) logPath(name string) string {
	dir := filepath.Join(n.cfg.DataDir, "logs")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return ""
	}
	return filepath.Join(dir, name+".log")
}

var errNoMesh = errors.New("this computer is in no network yet: share it, or join a network with a friend's invite token")

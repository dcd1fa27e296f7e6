package app

import (
	"context"
	"errors"

	"github.com/potluck-gpu/potluck/engine"
	"github.com/potluck-gpu/potluck/host"
	"github.com/potluck-gpu/potluck/hub"
	"github.com/potluck-gpu/potluck/library"
	"github.com/potluck-gpu/potluck/nodestate"
	"github.com/potluck-gpu/potluck/speculate"
)

// newHost prepares the host of the model name, with this node as its
// node and its network as its mesh.
func (n *Node) newHost(name string) *host.Host {
	h := n.newHostLogged(name, "llama-server")
	if path, alias, ok := n.findModel(name); ok {
		h.SetModel(path, alias)
	}
	return h
}

// newHostLogged is a host of name whose llama-server logs to the log
// file logName; "" logs to none.
func (n *Node) newHostLogged(name, logName string) *host.Host {
	return n.newScopedHost(name, logName, "")
}

// newScopedHost is newHostLogged for a model loaded on request, key: its
// warnings are its own, and go when it is unloaded.
func (n *Node) newScopedHost(name, logName, key string) *host.Host {
	cfg := host.Config{Name: n.cfg.Name, CtxSize: n.cfg.CtxSize, Threads: n.cfg.Threads, Split: n.cfg.Split,
		Log: n.log, Ledger: n.ledger, RPCService: serviceRPC,
		Draft: n.draftChoice(), DraftMax: n.cfg.DraftMax, DraftMin: n.cfg.DraftMin}
	if logName != "" {
		cfg.LogFile = n.logPath(logName)
		cfg.Log = n.log.With("model", name)
	}
	return host.New(cfg, hostMesh{n}, hostNode{n, key}, name)
}

// errLeft is a tunnel asked for in no network.
var errLeft = errors.New("left the network")

// hostMesh is the node's network as its host sees it: whichever session
// is current, or none.
type hostMesh struct{ n *Node }

func (m hostMesh) Self() string {
	if s := m.n.currentMesh(); s != nil {
		return s.node.ID()
	}
	return ""
}

func (m hostMesh) Peers() []nodestate.Peer { return m.n.Peers() }

func (m hostMesh) PeerOfConn(remoteAddr string) (string, bool) {
	if s := m.n.currentMesh(); s != nil {
		return s.node.PeerOfConn(remoteAddr)
	}
	return "", false
}

func (m hostMesh) Tunnel(ctx context.Context, peerID, service string) (string, error) {
	s := m.n.currentMesh()
	if s == nil {
		return "", errLeft
	}
	return s.tunnel(ctx, peerID, service)
}

func (m hostMesh) CloseTunnels(peerID string) {
	if s := m.n.currentMesh(); s != nil {
		s.closeTunnels(peerID)
	}
}

func (m hostMesh) TunnelSent(peerIDs []string, service string) uint64 {
	if s := m.n.currentMesh(); s != nil {
		return s.tunnelSent(peerIDs, service)
	}
	return 0
}

// hostNode is the node as its host asks of it.
type hostNode struct {
	n *Node
	// scope is the model loaded on request the host serves; "": the
	// model the node serves. Its warnings' codes end in ":" and it.
	scope string
}

func (h hostNode) code(c string) string {
	if h.scope == "" {
		return c
	}
	return c + ":" + h.scope
}

func (h hostNode) Runtime() (engine.Runtime, engine.Versions, error) { return h.n.engineRuntime() }

func (h hostNode) Devices() ([]nodestate.DeviceInfo, []string) {
	return h.n.headDevices(), h.n.deviceChoice()
}

func (h hostNode) Pull(ctx context.Context, ref string, progress func(hub.Progress)) (library.Model, error) {
	return h.n.Pull(ctx, ref, progress)
}

func (h hostNode) ModelFiles(ctx context.Context, path string) ([]string, uint64) {
	return h.n.modelFiles(ctx, path)
}

func (h hostNode) Embeddings(name, alias string) bool { return h.n.embeddingsOn(name, alias) }

func (h hostNode) Models() []speculate.Model {
	models, _ := h.n.lib.List()
	out := make([]speculate.Model, 0, len(models))
	for _, m := range models {
		out = append(out, speculate.Model{Name: m.Name, Path: m.Path, Bytes: m.Size})
	}
	return out
}
func (h hostNode) ShareLimit() uint64       { return h.n.shareLimit() }
func (h hostNode) ClearWarning(code string) { h.n.clearWarning(h.code(code)) }

func (h hostNode) Warn(w nodestate.Warning) {
	w.Code = h.code(w.Code)
	h.n.warn(w)
}
func (h hostNode) Changed()  { h.n.events.publish(nodestate.Event{Kind: nodestate.EventStatus}) }
func (h hostNode) Announce() { h.n.publishInfo() }

// Ready announces the model and offers it to the network, as the share
// mode says.
func (h hostNode) Ready(alias string) {
	n := h.n
	n.events.publish(nodestate.Event{Kind: nodestate.EventModelReady, Message: alias + " is ready"})
	n.opMu.Lock()
	defer n.opMu.Unlock()
	if err := n.reexpose(); err != nil {
		n.log.Warn("expose the model", "err", err)
	}
}

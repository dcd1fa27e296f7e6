package host

import (
	"net/http"
	"strconv"
	"time"

	"github.com/potluck-gpu/potluck/ledger"
	"github.com/potluck-gpu/potluck/nodestate"
	"github.com/potluck-gpu/potluck/server"
)

// record adds a request the model proxy served to the accounts: its
// tokens go to every node of the plan, in proportion to its layers.
func (h *Host) record(asker, path string, w *ledger.CountingWriter) {
	self := h.mesh.Self()
	if h.cfg.Ledger == nil || self == "" || asker == "" || !ledger.Counts(path, w.Status) {
		return
	}
	in, out := w.Tokens.In(), w.Tokens.Out()
	if in == 0 && out == 0 {
		return
	}
	h.mu.Lock()
	plan, alias := h.plan, h.alias
	h.mu.Unlock()
	parts := make([]ledger.Part, 0, len(plan.Nodes))
	for _, a := range plan.Nodes {
		id := a.ID
		if a.Local {
			id = self
		}
		parts = append(parts, ledger.Part{Node: id, Layers: a.Layers})
	}
	h.cfg.Ledger.Add(ledger.Record{Asker: asker, Model: alias, TokensIn: in, TokensOut: out, Servers: ledger.ByLayers(parts, self)})
}

// asker is the node a request to the model proxy came from: a member
// through its tunnel, or this node.
func (h *Host) asker(remoteAddr string) string {
	if id, ok := h.mesh.PeerOfConn(remoteAddr); ok {
		return id
	}
	return h.mesh.Self()
}

// overLimit answers 429 when asker, another node, has had its daily share
// of this node's model (--share-limit); it reports whether it answered.
func (h *Host) overLimit(w http.ResponseWriter, asker string) bool {
	now := time.Now()
	self := h.mesh.Self()
	r, over := h.cfg.Ledger.OverLimit(self, asker, h.node.ShareLimit(), now)
	if !over || self == "" {
		return false
	}
	who := askerName(h.mesh.Peers(), asker)
	w.Header().Set("Retry-After", strconv.Itoa(r.RetryAfter(now)))
	server.WriteError(w, http.StatusTooManyRequests, "rate_limit_error", "share_limit", r.Message(who, h.cfg.Name, now))
	return true
}

// askerName is how a refusal names the member id: by the name it
// announced, or, while its info has not arrived, by a shortened peer id.
func askerName(peers []nodestate.Peer, id string) string {
	for _, p := range peers {
		if p.ID == id && p.Name != "" {
			return p.Name
		}
	}
	short := id
	if len(id) > 14 {
		short = id[:8] + "…" + id[len(id)-4:]
	}
	return "a member whose name has not arrived yet (" + short + ")"
}

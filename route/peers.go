package route

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/potluck-gpu/potluck/host"
	"github.com/potluck-gpu/potluck/nodestate"
	"github.com/potluck-gpu/potluck/server"
)

// peerModels caches what peers' models do, by peer id and model: a
// peer's door to its models answers host.ModelInfoPath?model=ID for each
// model it has loaded (an older peer, for the one it serves).
type peerModels struct {
	mu sync.Mutex
	m  map[string]*peerModel
}

type peerModel struct {
	model   server.Model
	fetched time.Time // when it answered; zero: never
	asked   time.Time // when it was last asked
	busy    bool
}

// peerModelsFresh is how long what a peer said is trusted before it is
// asked again (in the background: until then the old answer stands), and
// peerModelsRetry how soon a peer that did not answer is asked again.
const (
	peerModelsFresh = 30 * time.Second
	peerModelsRetry = 5 * time.Second
)

// peerModel is what peer p said of its model id; it asks again in the
// background when that is old, or not known yet.
func (r *Router) peerModel(p nodestate.Peer, id string) (server.Model, bool) {
	c := &r.peers
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]*peerModel{}
	}
	k := p.ID + "\x00" + id
	e := c.m[k]
	if e == nil {
		e = &peerModel{}
		c.m[k] = e
	}
	known := !e.fetched.IsZero() && e.model.ID == id
	wait := peerModelsFresh
	if !known {
		wait = peerModelsRetry
	}
	if !e.busy && time.Since(e.asked) > wait {
		e.busy, e.asked = true, time.Now()
		go r.fetchPeerModel(p, id)
	}
	return e.model, known
}

// fetchPeerModel asks peer p what its model id does.
func (r *Router) fetchPeerModel(p nodestate.Peer, id string) {
	var m server.Model
	err := r.askPeerModel(p.ID, id, &m)
	c := &r.peers
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.m[p.ID+"\x00"+id]
	if e == nil {
		return
	}
	e.busy = false
	if err != nil {
		r.log.Debug("what a peer's model does is not known", "peer", p.Name, "err", err)
		return
	}
	e.model, e.fetched = m, time.Now()
}

func (r *Router) askPeerModel(peerID, id string, m *server.Model) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	addr, err := r.mesh.Tunnel(ctx, peerID, r.cfg.Service)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+host.ModelInfoPath+"?model="+url.QueryEscape(id), nil)
	if err != nil {
		return err
	}
	resp, err := r.cfg.Client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s (an older Potluck)", host.ModelInfoPath, resp.Status)
	}
	return json.NewDecoder(http.MaxBytesReader(nil, resp.Body, 64<<10)).Decode(m)
}

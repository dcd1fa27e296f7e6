package app

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/potluck-gpu/potluck/library"
	"github.com/potluck-gpu/potluck/nodestate"
	"github.com/potluck-gpu/potluck/swarm"
)

// serviceModels is the mesh service that copies model files to peers.
const serviceModels = "models"

// maxOffered bounds the files a node announces.
const maxOffered = 64

// offeredFiles lists the files of this machine's models whose sha256 is
// known: what peers may copy while this node shares.
func (n *Node) offeredFiles() []nodestate.OfferedFile {
	models, _ := n.lib.List()
	var out []nodestate.OfferedFile
	for _, m := range models {
		if !m.Hashed() {
			continue
		}
		for _, f := range m.Files {
			out = append(out, nodestate.OfferedFile{Model: m.Name, File: filepath.Base(f.Path), SHA256: f.SHA256, Size: f.Size})
		}
		if len(out) >= maxOffered {
			break
		}
	}
	return out
}

// fileIndex finds local files by sha256 for the swarm server, listing the
// library again when a file is not known yet.
type fileIndex struct {
	lib *library.Library

	mu     sync.Mutex
	byHash map[string]string
	listed time.Time
}

func (x *fileIndex) lookup(sha string) (string, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if p, ok := x.byHash[sha]; ok {
		return p, true
	}
	if time.Since(x.listed) < 2*time.Second {
		return "", false
	}
	x.listed = time.Now()
	models, _ := x.lib.List()
	x.byHash = map[string]string{}
	for _, m := range models {
		for _, f := range m.Files {
			if f.SHA256 != "" {
				x.byHash[f.SHA256] = f.Path
			}
		}
	}
	p, ok := x.byHash[sha]
	return p, ok
}

// runSwarm serves this machine's model files on loopback, for the mesh
// service that peers reach while this node shares.
func (n *Node) runSwarm(ctx context.Context) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	idx := &fileIndex{lib: n.lib}
	srv := &http.Server{
		Handler:           swarm.NewServer(idx.lookup, library.ManifestDir(n.cfg.DataDir), func(b int64) { n.swarmSent.Add(uint64(b)) }),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       time.Minute,
	}
	n.mu.Lock()
	n.swarmAddr = ln.Addr().String()
	n.mu.Unlock()
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// peerOffers lists the online peers and the model files they offer.
func (n *Node) peerOffers() []library.Peer {
	var out []library.Peer
	for _, p := range n.Peers() {
		if !p.Online {
			continue
		}
		lp := library.Peer{ID: p.ID, Name: p.Name}
		for _, f := range p.Files {
			lp.Files = append(lp.Files, f)
		}
		out = append(out, lp)
	}
	return out
}

// dialSwarm returns the URL of a peer's model file server, through a
// tunnel of the node's network.
func (n *Node) dialSwarm(ctx context.Context, peerID string) (string, error) {
	s := n.currentMesh()
	if s == nil {
		return "", errNoMesh
	}
	addr, err := s.tunnel(ctx, peerID, serviceModels)
	return "http://" + addr, err
}

// fileInfo is what a node says about model files in its node info: those
// it lets peers copy, those it loads as the head of a split, and those
// its RPC worker's tensor cache holds.
type fileInfo struct {
	Offer  []nodestate.OfferedFile `json:"offer,omitempty"`
	Head   []string                `json:"head,omitempty"`   // sha256 of the model files it serves
	Seeded []string                `json:"seeded,omitempty"` // sha256 of the files its worker cache holds
	// NoLoads: as a server, it loads none of the models offered for
	// members' requests (--allow-peer-loads=false).
	NoLoads bool `json:"no_loads,omitempty"`
}

// decodeFiles reads a peer's fileInfo from its node info.
func decodeFiles(raw json.RawMessage) fileInfo {
	var fi fileInfo
	if len(raw) == 0 || json.Unmarshal(raw, &fi) != nil || len(fi.Offer) > maxOffered || len(fi.Head) > 16 || len(fi.Seeded) > maxOffered {
		return fileInfo{}
	}
	return fi
}

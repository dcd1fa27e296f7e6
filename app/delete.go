package app

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/potluck-gpu/potluck/library"
	"github.com/potluck-gpu/potluck/nodestate"
)

// DeleteModel removes the model name names from Potluck's store on this
// machine, with what Potluck kept about it (see library.Library.Remove).
// Other tools' models and those of --models-dir are never deleted. Peers
// hear at once that its files are no longer offered.
func (n *Node) DeleteModel(ctx context.Context, name string) (library.Model, error) {
	n.serveMu.Lock() // no model starts being served meanwhile
	defer n.serveMu.Unlock()
	if err := ctx.Err(); err != nil {
		return library.Model{}, err
	}
	m, err := n.lib.Remove(strings.TrimSpace(name), n.cfg.DataDir, n.release)
	if err != nil {
		return m, err
	}
	n.log.Info("removed a model", "model", m.Name, "files", len(m.Files), "bytes", m.Size)
	n.publishInfo()
	n.events.publish(nodestate.Event{Kind: nodestate.EventStatus, Message: "removed " + m.Name})
	return m, nil
}

// release makes sure this node no longer uses m's files, before they are
// deleted: a model loaded on request is unloaded. The caller holds
// serveMu. The model being served is not let go of here: it is an error,
// until another model is served in its place.
func (n *Node) release(m library.Model) error {
	h := n.modelHost()
	if h != nil {
		path, alias := h.Ident()
		if _, asked := library.Match([]library.Model{m}, h.Name()); asked || alias == m.Name || usesFile(m, path) {
			return &modelInUseError{Name: m.Name}
		}
	}
	if n.sched.Unload(m.Name) {
		n.log.Info("unloaded a model to remove it", "model", m.Name)
	}
	return nil
}

// usesFile says whether path is one of m's files.
func usesFile(m library.Model, path string) bool {
	if path == "" {
		return false
	}
	pi, perr := os.Stat(path)
	for _, f := range m.Files {
		if filepath.Clean(f.Path) == filepath.Clean(path) {
			return true
		}
		if fi, err := os.Stat(f.Path); err == nil && perr == nil && os.SameFile(pi, fi) {
			return true
		}
	}
	return false
}

// modelInUseError is a model that cannot be removed while this node
// serves it.
type modelInUseError struct{ Name string }

func (e *modelInUseError) Error() string {
	return fmt.Sprintf("%s is the model this node serves: serve another model, or none, first "+
		"(the tray's Serve a model…, or POST /api/serve {\"model\": \"\"}), then remove it", e.Name)
}

// Conflict makes it a 409 on the node API.
func (e *modelInUseError) Conflict() bool { return true }

// Package hubtest serves Hugging Face's layout for tests, on loopback: the
// file list at /api/models/REPO, files at /REPO/resolve/REV/FILE behind a
// redirect to a storage URL with the checksum headers the hub sends, and
// Range requests. It can cut a transfer midway, corrupt a byte, and pace
// transfers so that a test can stop one midway.
package hubtest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/internal/rangeserve"
)

// Hub is a running fake hub.
type Hub struct {
	URL string
	srv *httptest.Server

	mu    sync.Mutex
	repos map[string]map[string][]byte // repo → path → content
	gated map[string]string            // repo → token it needs
	cut   int64                        // cut the next transfer after this many bytes; 0: none
	flip  int64                        // corrupt the byte at this offset of the next transfer; -1: none
	rate  int64                        // bytes a second of every transfer; 0: as fast as it goes

	// Requests counts requests by kind: "api", "resolve", "storage".
	Requests sync.Map
	// Ranges records the Range header of every storage request.
	rangesMu sync.Mutex
	ranges   []string
	served   atomic.Int64 // bytes of file content sent
	active   atomic.Int32 // file transfers under way
}

// New starts a hub; it stops when the test ends.
func New(t testing.TB) *Hub {
	h := &Hub{repos: map[string]map[string][]byte{}, gated: map[string]string{}, flip: -1}
	h.srv = httptest.NewServer(http.HandlerFunc(h.serve))
	h.URL = h.srv.URL
	t.Cleanup(h.srv.Close)
	return h
}

// Add puts content at repo/path.
func (h *Hub) Add(repo, path string, content []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.repos[repo] == nil {
		h.repos[repo] = map[string][]byte{}
	}
	h.repos[repo][path] = content
}

// AddFile puts the file at src at repo/path.
func (h *Hub) AddFile(t testing.TB, repo, path, src string) []byte {
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	h.Add(repo, path, data)
	return data
}

// Gate makes repo answer 401 to requests without token.
func (h *Hub) Gate(repo, token string) {
	h.mu.Lock()
	h.gated[repo] = token
	h.mu.Unlock()
}

// CutNext ends the next file transfer after n bytes, as a dropped
// connection does.
func (h *Hub) CutNext(n int64) {
	h.mu.Lock()
	h.cut = n
	h.mu.Unlock()
}

// CorruptNext flips the byte at offset off of the next file transfer.
func (h *Hub) CorruptNext(off int64) {
	h.mu.Lock()
	h.flip = off
	h.mu.Unlock()
}

// Pace sends every file transfer from now on at about rate bytes a
// second; 0 sends as fast as it goes.
func (h *Hub) Pace(rate int64) {
	h.mu.Lock()
	h.rate = rate
	h.mu.Unlock()
}

// Active is the number of file transfers under way: a transfer ends when
// it is whole or when its client goes away.
func (h *Hub) Active() int { return int(h.active.Load()) }

// Idle waits up to d until no transfer is in progress; false if one
// still is.
func (h *Hub) Idle(d time.Duration) bool {
	for deadline := time.Now().Add(d); h.Active() > 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			return false
		}
	}
	return true
}

// Ranges returns the Range headers of the storage requests so far.
func (h *Hub) Ranges() []string {
	h.rangesMu.Lock()
	defer h.rangesMu.Unlock()
	return append([]string(nil), h.ranges...)
}

// Served is the file bytes sent so far.
func (h *Hub) Served() int64 { return h.served.Load() }

// Count is how many requests of a kind the hub answered.
func (h *Hub) Count(kind string) int {
	v, _ := h.Requests.Load(kind)
	n, _ := v.(*atomic.Int64)
	if n == nil {
		return 0
	}
	return int(n.Load())
}

func (h *Hub) count(kind string) {
	v, _ := h.Requests.LoadOrStore(kind, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
}

// Sum is the hex sha256 of data, as the hub publishes it.
func Sum(data []byte) string {
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}

func (h *Hub) serve(w http.ResponseWriter, r *http.Request) {
	p := strings.TrimPrefix(r.URL.Path, "/")
	switch {
	case strings.HasPrefix(p, "api/models/"):
		h.count("api")
		h.serveInfo(w, r, strings.TrimPrefix(p, "api/models/"))
	case strings.HasPrefix(p, "storage/"):
		h.count("storage")
		h.serveStorage(w, r, strings.TrimPrefix(p, "storage/"))
	case strings.Contains(p, "/resolve/"):
		h.count("resolve")
		h.serveResolve(w, r, p)
	default:
		http.NotFound(w, r)
	}
}

func (h *Hub) allowed(w http.ResponseWriter, r *http.Request, repo string) bool {
	h.mu.Lock()
	tok, gated := h.gated[repo]
	h.mu.Unlock()
	if gated && r.Header.Get("Authorization") != "Bearer "+tok {
		w.Header().Set("X-Error-Code", "GatedRepo")
		http.Error(w, `{"error":"Access to this repository is restricted."}`, http.StatusUnauthorized)
		return false
	}
	return true
}

func (h *Hub) serveInfo(w http.ResponseWriter, r *http.Request, repo string) {
	repo, _, _ = strings.Cut(repo, "/revision/")
	h.mu.Lock()
	files, ok := h.repos[repo]
	var names []string
	for name := range files {
		names = append(names, name)
	}
	h.mu.Unlock()
	if !ok {
		w.Header().Set("X-Error-Code", "RepoNotFound")
		http.Error(w, `{"error":"Repository not found"}`, http.StatusNotFound)
		return
	}
	if !h.allowed(w, r, repo) {
		return
	}
	type sibling struct {
		Name string `json:"rfilename"`
	}
	info := struct {
		ID       string    `json:"id"`
		Siblings []sibling `json:"siblings"`
	}{ID: repo}
	for _, n := range names {
		info.Siblings = append(info.Siblings, sibling{n})
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(info)
}

// serveResolve answers /OWNER/REPO/resolve/REV/FILE with the hub's redirect
// to storage and its checksum headers.
func (h *Hub) serveResolve(w http.ResponseWriter, r *http.Request, p string) {
	repo, rest, _ := strings.Cut(p, "/resolve/")
	_, file, ok := strings.Cut(rest, "/")
	h.mu.Lock()
	data, found := h.repos[repo][file]
	h.mu.Unlock()
	if !ok || !found {
		w.Header().Set("X-Error-Code", "EntryNotFound")
		http.Error(w, "Entry not found", http.StatusNotFound)
		return
	}
	if !h.allowed(w, r, repo) {
		return
	}
	sum := Sum(data)
	w.Header().Set("X-Linked-Etag", `"`+sum+`"`)
	w.Header().Set("X-Linked-Size", strconv.Itoa(len(data)))
	w.Header().Set("ETag", `W/"not-the-sha"`)
	w.Header().Set("X-Repo-Commit", "0123456789abcdef0123456789abcdef01234567")
	w.Header().Set("Location", h.URL+"/storage/"+sum+"?repo="+repo+"&file="+file)
	w.WriteHeader(http.StatusFound)
}

func (h *Hub) serveStorage(w http.ResponseWriter, r *http.Request, sum string) {
	q := r.URL.Query()
	h.mu.Lock()
	data, ok := h.repos[q.Get("repo")][q.Get("file")]
	cut, flip, rate := h.cut, h.flip, h.rate
	h.cut, h.flip = 0, -1
	h.mu.Unlock()
	if !ok || Sum(data) != sum {
		http.NotFound(w, r)
		return
	}
	h.rangesMu.Lock()
	h.ranges = append(h.ranges, r.Header.Get("Range"))
	h.rangesMu.Unlock()
	h.active.Add(1)
	defer h.active.Add(-1)
	h.served.Add(rangeserve.Serve(w, r, data, rangeserve.Options{Cut: cut, Flip: flip + 1, Rate: rate}))
}

package swarm_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/engine/enginetest"
	"github.com/potluck-gpu/potluck/swarm"
)

const testChunk = 64 << 10

// peer is a node serving the test model over real HTTP on loopback.
type peer struct {
	name   string
	srv    *httptest.Server
	served atomic.Int64 // file bytes sent
	chunks atomic.Int32 // file requests answered
}

// newPeer serves path; wrap, if not nil, stands between the server and
// the network.
func newPeer(t *testing.T, name, path, sha string, wrap func(p *peer, next http.Handler) http.Handler) *peer {
	p := &peer{name: name}
	s := swarm.NewServer(func(h string) (string, bool) { return path, h == sha }, t.TempDir(), func(n int64) { p.served.Add(n) })
	s.Chunk = testChunk
	var h http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, "/manifest") {
			p.chunks.Add(1)
		}
		s.ServeHTTP(w, r)
	})
	if wrap != nil {
		h = wrap(p, h)
	}
	p.srv = httptest.NewServer(h)
	t.Cleanup(p.srv.Close)
	return p
}

func (p *peer) source() swarm.Source {
	return swarm.Source{Name: p.name, Base: func(context.Context) (string, error) { return p.srv.URL, nil }}
}

func model(t *testing.T) (string, []byte, string) {
	path := enginetest.TestModel(t).Path
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return path, data, hex.EncodeToString(sum[:])
}

func fetch(t *testing.T, dest, sha string, size int64, peers ...*peer) ([]swarm.Progress, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var srcs []swarm.Source
	for _, p := range peers {
		srcs = append(srcs, p.source())
	}
	var seen []swarm.Progress
	err := swarm.Fetch(ctx, http.DefaultClient, srcs, sha, size, dest, func(p swarm.Progress) { seen = append(seen, p) })
	return seen, err
}

func sameFile(t *testing.T, p string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Fatalf("%s differs from the original", p)
	}
}

// slow delays each chunk so that every peer gets a share.
func slow(p *peer, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(5 * time.Millisecond)
		next.ServeHTTP(w, r)
	})
}

func TestFetchFromTwoPeers(t *testing.T) {
	path, data, sha := model(t)
	a, b := newPeer(t, "a", path, sha, slow), newPeer(t, "b", path, sha, slow)
	dest := filepath.Join(t.TempDir(), "m.gguf")
	seen, err := fetch(t, dest, sha, int64(len(data)), a, b)
	if err != nil {
		t.Fatal(err)
	}
	sameFile(t, dest, data)
	last := seen[len(seen)-1]
	if last.Completed != int64(len(data)) || len(last.From) != 2 {
		t.Errorf("last progress %+v: want all bytes, from both peers", last)
	}
	if a.chunks.Load() == 0 || b.chunks.Load() == 0 {
		t.Errorf("chunks: a %d, b %d; want both to serve", a.chunks.Load(), b.chunks.Load())
	}
	// What each peer sent, as progress tells it, is what it served.
	want := []swarm.PeerSent{{Name: "a", Bytes: a.served.Load()}, {Name: "b", Bytes: b.served.Load()}}
	if !slices.Equal(last.Peers, want) {
		t.Errorf("last progress by peer %+v, want %+v", last.Peers, want)
	}
	if first := seen[0]; len(first.Peers) != 2 || first.Peers[0].Bytes+first.Peers[1].Bytes != first.Completed {
		t.Errorf("first progress %+v: want both peers named, with the bytes done", first)
	}
	if total := a.served.Load() + b.served.Load(); total != int64(len(data)) {
		t.Errorf("peers sent %d bytes for a %d-byte file", total, len(data))
	}
}

// A peer that sends wrong bytes is dropped after its first bad chunk, and
// the other sends the rest; so is one that dies midway.
func TestFetchDropsBadPeers(t *testing.T) {
	path, data, sha := model(t)
	liar := newPeer(t, "liar", path, sha, func(p *peer, next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, "/manifest") {
				next.ServeHTTP(w, r)
				return
			}
			rec := httptest.NewRecorder()
			next.ServeHTTP(rec, r)
			body := rec.Body.Bytes()
			if len(body) > 0 {
				body[len(body)/2] ^= 1
			}
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			w.Write(body)
		})
	})
	var cut atomic.Int32
	dying := newPeer(t, "dying", path, sha, func(p *peer, next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if p.chunks.Load() >= 3 && !strings.HasSuffix(r.URL.Path, "/manifest") {
				cut.Add(1)
				hj, _ := w.(http.Hijacker)
				conn, _, _ := hj.Hijack()
				conn.Close() // gone mid-transfer
				return
			}
			slow(p, next).ServeHTTP(w, r)
		})
	})
	good := newPeer(t, "good", path, sha, slow)
	dest := filepath.Join(t.TempDir(), "m.gguf")
	seen, err := fetch(t, dest, sha, int64(len(data)), liar, dying, good)
	if err != nil {
		t.Fatal(err)
	}
	sameFile(t, dest, data)
	var drops []string
	for _, p := range seen {
		if p.Dropped != "" {
			drops = append(drops, p.Dropped)
		}
	}
	if !slices.ContainsFunc(drops, func(s string) bool { return strings.Contains(s, "liar sent a wrong chunk") }) {
		t.Errorf("drops %q: want the liar dropped", drops)
	}
	if cut.Load() == 0 {
		t.Error("the dying peer never failed a chunk")
	}
	if n := liar.chunks.Load(); n != 1 {
		t.Errorf("the liar was asked for %d chunks; want 1, then dropped", n)
	}
}

// A fetch that no peer can finish keeps what it has; the next one fetches
// only the rest.
func TestFetchResumes(t *testing.T) {
	path, data, sha := model(t)
	var limit atomic.Int32
	limit.Store(5)
	flaky := newPeer(t, "flaky", path, sha, func(p *peer, next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !strings.HasSuffix(r.URL.Path, "/manifest") && p.chunks.Load() >= limit.Load() {
				http.Error(w, "gone", http.StatusServiceUnavailable)
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	dest := filepath.Join(t.TempDir(), "m.gguf")
	if _, err := fetch(t, dest, sha, int64(len(data)), flaky); err == nil || !strings.Contains(err.Error(), "kept for a retry") {
		t.Fatalf("err = %v, want the rest missing", err)
	}
	if _, err := os.Stat(swarm.PartialPath(dest, sha)); err != nil {
		t.Fatalf("partial file: %v", err)
	}
	got := flaky.served.Load()
	good := newPeer(t, "good", path, sha, nil)
	if _, err := fetch(t, dest, sha, int64(len(data)), good); err != nil {
		t.Fatal(err)
	}
	sameFile(t, dest, data)
	if sent := good.served.Load(); sent+got != int64(len(data)) || got == 0 {
		t.Errorf("first fetch got %d bytes, second %d: want them to add up to %d", got, sent, len(data))
	}
}

// A peer whose manifest describes other bytes is found out by the whole
// file's checksum; the fetch starts over with another peer's manifest.
func TestFetchSurvivesALyingManifest(t *testing.T) {
	path, data, sha := model(t)
	other := append([]byte(nil), data...)
	other[100] ^= 0xff
	otherPath := filepath.Join(t.TempDir(), "other.gguf")
	os.WriteFile(otherPath, other, 0o644)
	// The liar serves other bytes, and a manifest of them under sha.
	liar := newPeer(t, "liar", otherPath, sha, func(p *peer, next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, "/manifest") {
				m, _ := swarm.ComputeManifest(r.Context(), otherPath, testChunk)
				m.SHA256 = sha
				w.Header().Set("Content-Type", "application/json")
				writeJSON(w, m)
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	good := newPeer(t, "good", path, sha, nil)
	dest := filepath.Join(t.TempDir(), "m.gguf")
	if _, err := fetch(t, dest, sha, int64(len(data)), liar, good); err != nil {
		t.Fatal(err)
	}
	sameFile(t, dest, data)
}

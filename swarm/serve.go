// Package swarm copies model files between the machines of a network: each
// node serves the files it has, by sha256, with a manifest of per-chunk
// checksums it computes once; a fetch takes chunks from every peer that has
// the file at once, checks each, and drops a peer that sends wrong bytes.
package swarm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/potluck-gpu/potluck/internal/atomicfile"
)

// ChunkSize is the unit of transfer and of checking: 16 MiB.
const ChunkSize = 16 << 20

// maxChunk bounds the chunk size a peer's manifest may claim: each source
// of a fetch holds one chunk in memory.
const maxChunk = 64 << 20

// Manifest describes a file as chunks, each with its sha256.
type Manifest struct {
	SHA256 string   `json:"sha256"` // of the whole file
	Size   int64    `json:"size"`
	Chunk  int64    `json:"chunk"`  // bytes per chunk; the last may be shorter
	Chunks []string `json:"chunks"` // hex sha256 of each chunk
}

// chunks is how many chunks a file of size has.
func chunks(size, chunk int64) int {
	if size == 0 {
		return 0
	}
	return int((size + chunk - 1) / chunk)
}

// check says whether m is consistent with itself and with what is wanted.
func (m Manifest) check(sha string, size int64) error {
	switch {
	case m.SHA256 != sha:
		return fmt.Errorf("manifest is for %s, not %s", short(m.SHA256), short(sha))
	case size > 0 && m.Size != size:
		return fmt.Errorf("manifest says %d bytes, want %d", m.Size, size)
	case m.Chunk <= 0 || m.Chunk > maxChunk:
		return fmt.Errorf("manifest chunk size %d", m.Chunk)
	case len(m.Chunks) != chunks(m.Size, m.Chunk):
		return fmt.Errorf("manifest lists %d chunks for %d bytes", len(m.Chunks), m.Size)
	}
	return nil
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// Lookup finds the file with a sha256 among those this node offers.
type Lookup func(sha256 string) (path string, ok bool)

// Server serves files by sha256: GET /files/SHA (with Range) and
// GET /files/SHA/manifest.
type Server struct {
	// Chunk is the manifests' chunk size; NewServer sets ChunkSize.
	Chunk int64

	lookup   Lookup
	cacheDir string // where manifests are kept; empty: memory only

	mu    sync.Mutex
	known map[string]Manifest
	sent  func(n int64) // counts bytes served; may be nil
}

// NewServer serves the files lookup finds, keeping manifests in cacheDir.
func NewServer(lookup Lookup, cacheDir string, sent func(int64)) *Server {
	return &Server{Chunk: ChunkSize, lookup: lookup, cacheDir: cacheDir, known: map[string]Manifest{}, sent: sent}
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rest, ok := strings.CutPrefix(r.URL.Path, "/files/")
	if !ok || r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.NotFound(w, r)
		return
	}
	sha, wantManifest := strings.CutSuffix(rest, "/manifest")
	if len(sha) != 64 || strings.Trim(sha, "0123456789abcdef") != "" {
		http.Error(w, "not a sha256", http.StatusBadRequest)
		return
	}
	path, ok := s.lookup(sha)
	if !ok {
		http.Error(w, "no such file here", http.StatusNotFound)
		return
	}
	if wantManifest {
		m, err := s.manifest(r.Context(), sha, path)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(m)
		return
	}
	f, err := os.Open(path)
	if err != nil {
		http.Error(w, "cannot open it", http.StatusInternalServerError)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		http.Error(w, "cannot open it", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	cw := &countingWriter{ResponseWriter: w}
	http.ServeContent(cw, r, "", fi.ModTime(), f)
	if s.sent != nil {
		s.sent(cw.n)
	}
}

type countingWriter struct {
	http.ResponseWriter
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n += int64(n)
	return n, err
}

// manifest returns the file's manifest, computing it once: the whole
// file's sha256 is checked on the way, so a file that changed is refused.
func (s *Server) manifest(ctx context.Context, sha, path string) (Manifest, error) {
	s.mu.Lock()
	m, ok := s.known[sha]
	s.mu.Unlock()
	if ok {
		return m, nil
	}
	cache := ""
	if s.cacheDir != "" {
		cache = filepath.Join(s.cacheDir, sha+".json")
		if data, err := os.ReadFile(cache); err == nil && json.Unmarshal(data, &m) == nil && m.check(sha, 0) == nil && m.Chunk == s.Chunk {
			if fi, err := os.Stat(path); err == nil && fi.Size() == m.Size {
				s.remember(m)
				return m, nil
			}
		}
	}
	m, err := ComputeManifest(ctx, path, s.Chunk)
	if err != nil {
		return Manifest{}, err
	}
	if m.SHA256 != sha {
		return Manifest{}, errors.New("the file changed since its checksum was taken")
	}
	s.remember(m)
	if cache != "" {
		if data, err := json.Marshal(m); err == nil {
			_ = atomicfile.Write(cache, data, 0o600)
		}
	}
	return m, nil
}

func (s *Server) remember(m Manifest) {
	s.mu.Lock()
	s.known[m.SHA256] = m
	s.mu.Unlock()
}

// ComputeManifest reads the file at path once for its sha256 and its
// chunks'.
func ComputeManifest(ctx context.Context, path string, chunk int64) (Manifest, error) {
	f, err := os.Open(path)
	if err != nil {
		return Manifest{}, err
	}
	defer f.Close()
	whole := sha256.New()
	m := Manifest{Chunk: chunk}
	buf := make([]byte, 1<<20)
	for {
		if err := ctx.Err(); err != nil {
			return Manifest{}, err
		}
		part := sha256.New()
		n, err := io.CopyBuffer(io.MultiWriter(whole, part), io.LimitReader(f, chunk), buf)
		if err != nil {
			return Manifest{}, err
		}
		if n == 0 {
			break
		}
		m.Size += n
		m.Chunks = append(m.Chunks, hex.EncodeToString(part.Sum(nil)))
		if n < chunk {
			break
		}
	}
	m.SHA256 = hex.EncodeToString(whole.Sum(nil))
	return m, nil
}

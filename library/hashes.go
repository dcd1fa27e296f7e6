package library

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"io/fs"
	"os"
	"sync"
	"time"

	"github.com/potluck-gpu/potluck/engine"
	"github.com/potluck-gpu/potluck/internal/atomicfile"
)

// hashCache remembers, per file, what reading it taught: its metadata and
// its sha256. An entry holds while the file keeps its size and mtime.
type hashCache struct {
	file string // where it is saved; empty: memory only

	mu      sync.Mutex
	entries map[string]hashEntry
}

type hashEntry struct {
	Size    int64             `json:"size"`
	ModTime time.Time         `json:"mtime"`
	SHA256  string            `json:"sha256,omitempty"`
	Info    *engine.ModelInfo `json:"info,omitempty"`
}

func loadHashCache(file string) *hashCache {
	c := &hashCache{file: file, entries: map[string]hashEntry{}}
	if file == "" {
		return c
	}
	if data, err := os.ReadFile(file); err == nil {
		_ = json.Unmarshal(data, &c.entries) // a damaged cache is rebuilt
		if c.entries == nil {
			c.entries = map[string]hashEntry{}
		}
	}
	return c
}

// get returns what is known of path, if it has not changed since.
func (c *hashCache) get(path string, fi fs.FileInfo) hashEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[path]
	if !ok || e.Size != fi.Size() || !e.ModTime.Equal(fi.ModTime()) {
		return hashEntry{}
	}
	return e
}

// put updates path's entry (starting afresh if the file changed) and saves.
func (c *hashCache) put(path string, fi fs.FileInfo, update func(*hashEntry)) {
	c.mu.Lock()
	e, ok := c.entries[path]
	if !ok || e.Size != fi.Size() || !e.ModTime.Equal(fi.ModTime()) {
		e = hashEntry{Size: fi.Size(), ModTime: fi.ModTime()}
	}
	update(&e)
	c.entries[path] = e
	var data []byte
	if c.file != "" {
		data, _ = json.Marshal(c.entries)
	}
	c.mu.Unlock()
	if data != nil {
		_ = atomicfile.Write(c.file, data, 0o600) // a cache: losing it costs time only
	}
}

// forget drops what is known of paths, files that are gone, and saves.
func (c *hashCache) forget(paths []string) {
	c.mu.Lock()
	n := len(c.entries)
	for _, p := range paths {
		delete(c.entries, p)
	}
	var data []byte
	if c.file != "" && len(c.entries) != n {
		data, _ = json.Marshal(c.entries)
	}
	c.mu.Unlock()
	if data != nil {
		_ = atomicfile.Write(c.file, data, 0o600) // a cache: losing it costs time only
	}
}

// hash computes path's sha256 and records it.
func (c *hashCache) hash(ctx context.Context, path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	before, err := f.Stat()
	if err != nil {
		return "", err
	}
	h := sha256.New()
	if _, err := io.Copy(h, ctxReader{ctx, f}); err != nil {
		return "", err
	}
	after, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if after.Size() != before.Size() || !after.ModTime().Equal(before.ModTime()) {
		return "", errChanged
	}
	sum := hex.EncodeToString(h.Sum(nil))
	c.put(path, after, func(e *hashEntry) { e.SHA256 = sum })
	return sum, nil
}

// Hash returns the sha256 of the file at path, from the cache when the
// file is unchanged, otherwise computed now and kept.
func (l *Library) Hash(ctx context.Context, path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if e := l.hashes.get(path, fi); e.SHA256 != "" {
		return e.SHA256, nil
	}
	return l.hashes.hash(ctx, path)
}

// Record notes a file's sha256 known from elsewhere (a verified
// download), so that it is never computed again.
func (l *Library) Record(path, sha256hex string) {
	if fi, err := os.Stat(path); err == nil {
		l.hashes.put(path, fi, func(e *hashEntry) { e.SHA256 = sha256hex })
	}
}

type errString string

func (e errString) Error() string { return string(e) }

const errChanged = errString("the file changed while its checksum was computed")

// ctxReader stops a long read when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}

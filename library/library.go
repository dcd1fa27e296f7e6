// Package library finds the GGUF models on this machine: in Potluck's own
// store, in directories the user names, and in the stores of Ollama, LM
// Studio, Hugging Face's cache and llama.cpp's cache. Other tools' stores are
// read, never written.
//
// A model that is not here is pulled from a Source: the peers of the network
// that have it (Peers, which copies through package swarm) or Hugging Face
// (Hub). A Puller decides which, in what order, and what happens when one
// fails.
package library

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/potluck-gpu/potluck/engine"
	"github.com/potluck-gpu/potluck/hub"
)

// Where a model was found.
const (
	SourcePotluck     = "potluck"     // <data-dir>/models
	SourceDir         = "dir"         // a --models-dir
	SourceOllama      = "ollama"      // OLLAMA_MODELS or ~/.ollama/models
	SourceLMStudio    = "lmstudio"    // ~/.lmstudio/models
	SourceHuggingFace = "huggingface" // HF_HUB_CACHE or ~/.cache/huggingface/hub
	SourceLlamaCpp    = "llama.cpp"   // LLAMA_CACHE or ~/.cache/llama.cpp
)

// Model is one model found on this machine.
type Model struct {
	// Name is how the model is asked for: "llama3.2:3b" for Ollama's,
	// "OWNER/REPO/FILE" for a file from a Hugging Face repository, the
	// path below the directory without ".gguf" for the rest.
	Name   string `json:"name"`
	Source string `json:"source"`
	// Path is the file to give llama.cpp: the first shard of a split model.
	Path  string `json:"path"`
	Files []File `json:"files"`
	Size  uint64 `json:"size"` // bytes of every file

	Arch         string `json:"arch"`
	Params       uint64 `json:"params"`
	Quant        string `json:"quant"`
	Context      uint64 `json:"context"`
	ChatTemplate bool   `json:"chat_template"`
	// SHA256 is the hex sha256 of a one-file model; empty while it is
	// being computed, and for a split model (see Files).
	SHA256 string `json:"sha256,omitempty"`

	ModTime time.Time `json:"modified"`
}

// File is one file of a model.
type File struct {
	Path   string `json:"path"`
	Size   uint64 `json:"size"`
	SHA256 string `json:"sha256,omitempty"` // empty while being computed
}

// Hashed says whether every file's sha256 is known.
func (m Model) Hashed() bool {
	for _, f := range m.Files {
		if f.SHA256 == "" {
			return false
		}
	}
	return true
}

// Root is a directory to look for models in, and how to read it.
type Root struct {
	Source string
	Dir    string
}

// Roots are the places to look, in order of preference when two hold
// a model of the same name: Potluck's store first, then the user's
// directories, then the other tools'. getenv and home say where those
// tools keep their models.
func Roots(dataDir string, dirs []string, getenv func(string) string, home string) []Root {
	envOr := func(key string, def ...string) string {
		if v := getenv(key); key != "" && v != "" {
			return v
		}
		if home == "" {
			return ""
		}
		return filepath.Join(append([]string{home}, def...)...)
	}
	roots := []Root{{SourcePotluck, StoreDir(dataDir)}}
	for _, d := range dirs {
		roots = append(roots, Root{SourceDir, d})
	}
	hfCache := getenv("HF_HUB_CACHE")
	if hfCache == "" && getenv("HF_HOME") != "" {
		hfCache = filepath.Join(getenv("HF_HOME"), "hub")
	}
	if hfCache == "" && home != "" {
		hfCache = filepath.Join(home, ".cache", "huggingface", "hub")
	}
	for _, r := range []Root{
		{SourceOllama, envOr("OLLAMA_MODELS", ".ollama", "models")},
		{SourceLMStudio, envOr("", ".lmstudio", "models")},
		{SourceHuggingFace, hfCache},
		{SourceLlamaCpp, envOr("LLAMA_CACHE", ".cache", "llama.cpp")},
	} {
		if r.Dir != "" {
			roots = append(roots, r)
		}
	}
	return roots
}

// StoreDir is Potluck's own model store in dataDir.
func StoreDir(dataDir string) string { return filepath.Join(dataDir, "models") }

// Library lists the models under its roots. It is safe for concurrent use.
type Library struct {
	roots  []Root
	hashes *hashCache
	log    *slog.Logger

	hashing sync.Mutex // one background hasher at a time
}

// New returns a library of roots that keeps what it learns about files
// (metadata, sha256) in cacheFile.
func New(roots []Root, cacheFile string, log *slog.Logger) *Library {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Library{roots: roots, hashes: loadHashCache(cacheFile), log: log}
}

// Roots returns where the library looks.
func (l *Library) Roots() []Root { return slices.Clone(l.roots) }

// Warning is a place the library could not read. It never stops a list.
type Warning struct {
	Dir string `json:"dir"`
	Err string `json:"error"`
}

func (w Warning) String() string { return fmt.Sprintf("%s: %s", w.Dir, w.Err) }

// List returns the models under every root, sorted by name, and what it
// could not read. Missing roots are not warnings: most people have only
// some of the other tools.
func (l *Library) List() ([]Model, []Warning) {
	var (
		models   []Model
		warnings []Warning
		seen     = map[string]int{} // name → index in models
	)
	for _, r := range l.roots {
		cands, warns := scanRoot(r)
		warnings = append(warnings, warns...)
		for _, c := range cands {
			m, err := l.describe(c)
			if err != nil {
				warnings = append(warnings, Warning{Dir: c.files[0], Err: err.Error()})
				continue
			}
			if m == nil {
				continue // not a model: a projector, an adapter
			}
			if i, ok := seen[m.Name]; ok {
				if models[i].Size == m.Size {
					continue // the same model in a second store
				}
				m.Name += "@" + m.Source
				if _, ok := seen[m.Name]; ok {
					continue
				}
			}
			seen[m.Name] = len(models)
			models = append(models, *m)
		}
	}
	slices.SortFunc(models, func(a, b Model) int { return cmp.Compare(a.Name, b.Name) })
	return models, warnings
}

// describe reads a candidate's metadata, from the cache when its files are
// unchanged. It returns nil for a file that is not a model.
func (l *Library) describe(c candidate) (*Model, error) {
	m := &Model{Name: c.name, Source: c.source, Path: c.files[0]}
	for i, p := range c.files {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		f := File{Path: p, Size: uint64(fi.Size())}
		if i == 0 && c.sha256 != "" && len(c.files) == 1 {
			f.SHA256 = c.sha256
		}
		e := l.hashes.get(p, fi)
		if f.SHA256 == "" {
			f.SHA256 = e.SHA256
		}
		if i == 0 {
			info := e.Info
			if info == nil {
				got, err := engine.DescribeModel(p)
				if err != nil {
					return nil, err
				}
				info = &got
				l.hashes.put(p, fi, func(e *hashEntry) { e.Info = info })
			}
			if !info.IsModel() {
				return nil, nil
			}
			m.Arch, m.Params, m.Quant, m.Context, m.ChatTemplate = info.Arch, info.Params, info.Quant, info.Context, info.ChatTemplate
		}
		m.Size += f.Size
		if t := fi.ModTime().UTC().Truncate(time.Second); t.After(m.ModTime) {
			m.ModTime = t
		}
		m.Files = append(m.Files, f)
	}
	if len(m.Files) == 1 {
		m.SHA256 = m.Files[0].SHA256
	}
	return m, nil
}

// Find returns the model a name asks for: a library name ("llama3.2" means
// "llama3.2:latest"), or "OWNER/REPO:QUANT" for the file of that
// quantization from a Hugging Face repository, with or without "hf.co/".
func (l *Library) Find(name string) (Model, bool) {
	models, _ := l.List()
	return Match(models, name)
}

// Match is Find over a list of models.
func Match(models []Model, name string) (Model, bool) {
	name = strings.TrimSpace(name)
	for _, try := range []string{name, strings.TrimSuffix(name, ".gguf"), name + ":latest"} {
		for _, m := range models {
			if m.Name == try {
				return m, true
			}
		}
	}
	// A Hugging Face reference, as Ollama and llama.cpp's -hf write it.
	ref, err := hub.ParseRef(name)
	if err != nil {
		return Model{}, false
	}
	for _, m := range models {
		if ref.File != "" {
			if strings.EqualFold(m.Name, ref.Repo+"/"+strings.TrimSuffix(ref.File, ".gguf")) {
				return m, true
			}
			continue
		}
		if strings.EqualFold(m.Name, ref.String()) {
			return m, true // Ollama's name for a model it pulled from the hub
		}
		file := filepath.Base(m.Path)
		if base, _, _, ok := hub.Shard(file); ok {
			file = base
		}
		if strings.HasPrefix(strings.ToLower(m.Name), strings.ToLower(ref.Repo)+"/") && hub.QuantMatches(file, cmp.Or(ref.Quant, hub.DefaultQuant)) {
			return m, true
		}
	}
	return Model{}, false
}

// HashInBackground computes the sha256 of every listed file that has none
// yet, one file at a time, until ctx ends. It returns at once when another
// call is already at it.
func (l *Library) HashInBackground(ctx context.Context) {
	if !l.hashing.TryLock() {
		return
	}
	defer l.hashing.Unlock()
	models, _ := l.List()
	for _, m := range models {
		for _, f := range m.Files {
			if f.SHA256 != "" {
				continue
			}
			if ctx.Err() != nil {
				return
			}
			start := time.Now()
			if _, err := l.hashes.hash(ctx, f.Path); err != nil {
				if ctx.Err() == nil {
					l.log.Warn("model checksum", "file", f.Path, "err", err)
				}
				continue
			}
			l.log.Debug("model checksum", "file", f.Path, "took", time.Since(start).Round(time.Millisecond))
		}
	}
}

// Get returns the model ref names. A model in the library is returned as
// it is, with no network call; otherwise ref, a Hugging Face reference, is
// pulled from the hub into store and recorded with its published sha256.
// The caller serializes pulls of the same reference.
func (l *Library) Get(ctx context.Context, c *hub.Client, ref, store string, progress func(hub.Progress)) (Model, error) {
	if progress == nil {
		progress = func(hub.Progress) {}
	}
	if m, ok := l.Find(ref); ok {
		progress(hub.Progress{Status: "success", File: m.Name, From: "here"})
		return m, nil
	}
	r, err := hub.ParseRef(ref)
	if err != nil {
		return Model{}, &NotFoundError{Name: ref}
	}
	files, paths, err := c.Pull(ctx, r, store, progress)
	if err != nil {
		return Model{}, err
	}
	for i, f := range files {
		if f.SHA256 != "" {
			l.Record(paths[i], f.SHA256)
		}
	}
	m, ok := l.Find(files[0].Name())
	if !ok {
		return Model{}, fmt.Errorf("pulled %s into %s, but it is not in the library: is %s one of the library's places?", files[0].Name(), paths[0], store)
	}
	progress(hub.Progress{Status: "success", File: m.Name})
	return m, nil
}

// NotFoundError is a name that is no model in the library, no GGUF file,
// and no Hugging Face reference.
type NotFoundError struct{ Name string }

func (e *NotFoundError) Error() string {
	return fmt.Sprintf("%q is not a GGUF file, nor a model in the library (`potluck models` lists them), "+
		"nor a Hugging Face reference such as OWNER/REPO:Q4_K_M or OWNER/REPO/FILE.gguf", e.Name)
}

// InvalidInput marks it as the client's mistake for the node API.
func (e *NotFoundError) InvalidInput() bool { return true }

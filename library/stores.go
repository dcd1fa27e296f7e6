package library

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/potluck-gpu/potluck/hub"
)

// candidate is a model a store holds, before its files are read.
type candidate struct {
	name, source string
	files        []string // the first shard first
	sha256       string   // known from the store's own naming, if any
}

// maxDepth bounds how deep a directory of models is searched, so that a
// --models-dir of a home directory does not crawl all of it.
const maxDepth = 6

// scanRoot lists the candidates in one root. A root that does not exist
// holds nothing; one that cannot be read is a warning.
func scanRoot(r Root) ([]candidate, []Warning) {
	fi, err := os.Stat(r.Dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, nil
	case err != nil:
		return nil, []Warning{{Dir: r.Dir, Err: err.Error()}}
	case !fi.IsDir():
		return nil, []Warning{{Dir: r.Dir, Err: "not a directory"}}
	}
	switch r.Source {
	case SourceOllama:
		return scanOllama(r.Dir)
	case SourceHuggingFace:
		return scanHubCache(r.Dir, r.Source)
	case SourceLlamaCpp:
		return scanLlamaCache(r.Dir)
	}
	return scanTree(r.Dir, r.Source)
}

// isGGUF says whether a file name is a GGUF file that can be a model:
// mmproj files are vision projectors.
func isGGUF(name string) bool {
	lower := strings.ToLower(name)
	return strings.HasSuffix(lower, ".gguf") && !strings.Contains(lower, "mmproj") && !strings.HasPrefix(name, ".")
}

// modelFiles turns the file at p into the files of one model and the name
// it goes by (its path without .gguf or the shard suffix); ok is false for
// a shard after the first, and err names a split model with shards missing.
func modelFiles(p string) (files []string, base string, ok bool, err error) {
	name := filepath.Base(p)
	base, idx, n, split := hub.Shard(name)
	if !split {
		return []string{p}, strings.TrimSuffix(p, filepath.Ext(p)), true, nil
	}
	if idx != 1 {
		return nil, "", false, nil
	}
	dir := filepath.Dir(p)
	for i := 1; i <= n; i++ {
		f := filepath.Join(dir, hub.ShardName(base, i, n))
		if _, err := os.Stat(f); err != nil {
			return nil, "", false, errors.New("split model " + name + " lacks shard " + filepath.Base(f))
		}
		files = append(files, f)
	}
	return files, filepath.Join(dir, base), true, nil
}

// scanTree finds GGUF files below dir; each is named by its path below dir.
func scanTree(dir, source string) ([]candidate, []Warning) {
	var (
		out   []candidate
		warns []Warning
	)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p != dir {
				warns = append(warns, Warning{Dir: p, Err: errors.Unwrap(err).Error()})
				return nil
			}
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			if p != dir && (strings.HasPrefix(d.Name(), ".") || strings.Count(rel, string(filepath.Separator)) >= maxDepth) {
				return filepath.SkipDir
			}
			return nil
		}
		if !isGGUF(d.Name()) {
			return nil
		}
		files, base, ok, err := modelFiles(p)
		if err != nil {
			warns = append(warns, Warning{Dir: p, Err: err.Error()})
		}
		if !ok {
			return nil
		}
		name, _ := filepath.Rel(dir, base)
		out = append(out, candidate{name: filepath.ToSlash(name), source: source, files: files})
		return nil
	})
	if err != nil {
		warns = append(warns, Warning{Dir: dir, Err: err.Error()})
	}
	return out, warns
}

// scanHubCache reads Hugging Face's cache: models--OWNER--REPO/snapshots/REV
// holds links into blobs/, which for large files are named by their sha256.
// The revision refs/main names is used, else the newest.
func scanHubCache(dir, source string) ([]candidate, []Warning) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, []Warning{{Dir: dir, Err: err.Error()}}
	}
	var (
		out   []candidate
		warns []Warning
	)
	for _, e := range entries {
		owner, repo, ok := strings.Cut(strings.TrimPrefix(e.Name(), "models--"), "--")
		if !e.IsDir() || !strings.HasPrefix(e.Name(), "models--") || !ok {
			continue
		}
		repoDir := filepath.Join(dir, e.Name())
		snap := hubSnapshot(repoDir)
		if snap == "" {
			continue
		}
		cands, w := scanTree(snap, source)
		warns = append(warns, w...)
		for _, c := range cands {
			c.name = owner + "/" + repo + "/" + c.name
			if len(c.files) == 1 {
				if target, err := os.Readlink(c.files[0]); err == nil && isHex64(filepath.Base(target)) {
					c.sha256 = filepath.Base(target)
				}
			}
			out = append(out, c)
		}
	}
	return out, warns
}

// hubSnapshot is the snapshot directory of one repository in the cache.
func hubSnapshot(repoDir string) string {
	snaps := filepath.Join(repoDir, "snapshots")
	if ref, err := os.ReadFile(filepath.Join(repoDir, "refs", "main")); err == nil {
		p := filepath.Join(snaps, strings.TrimSpace(string(ref)))
		if fi, err := os.Stat(p); err == nil && fi.IsDir() && filepath.Dir(p) == snaps {
			return p
		}
	}
	entries, err := os.ReadDir(snaps)
	if err != nil {
		return ""
	}
	var best string
	var bestTime int64
	for _, e := range entries {
		if fi, err := e.Info(); err == nil && e.IsDir() && fi.ModTime().UnixNano() >= bestTime {
			best, bestTime = filepath.Join(snaps, e.Name()), fi.ModTime().UnixNano()
		}
	}
	return best
}

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// scanLlamaCache reads llama.cpp's cache. A cache in Hugging Face's layout
// is read as one. Otherwise `-hf` leaves OWNER_REPO_FILE.gguf beside a
// manifest=OWNER=REPO=TAG.json naming the file; files without a manifest
// go by their own name.
func scanLlamaCache(dir string) ([]candidate, []Warning) {
	out, warns := scanHubCache(dir, SourceLlamaCpp)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return out, append(warns, Warning{Dir: dir, Err: err.Error()})
	}
	named := map[string]string{} // local file name → OWNER/REPO/FILE
	for _, e := range entries {
		parts := strings.Split(strings.TrimSuffix(e.Name(), ".json"), "=")
		if len(parts) != 4 || parts[0] != "manifest" || !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		var man struct {
			GGUF struct {
				Name string `json:"rfilename"`
			} `json:"ggufFile"`
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil || json.Unmarshal(data, &man) != nil || man.GGUF.Name == "" {
			continue
		}
		owner, repo := parts[1], parts[2]
		file := man.GGUF.Name
		local := owner + "_" + repo + "_" + strings.ReplaceAll(file, "/", "_")
		named[strings.ToLower(local)] = owner + "/" + repo + "/" + strings.TrimSuffix(file, path.Ext(file))
	}
	for _, e := range entries {
		if e.IsDir() || !isGGUF(e.Name()) {
			continue
		}
		files, base, ok, err := modelFiles(filepath.Join(dir, e.Name()))
		if err != nil {
			warns = append(warns, Warning{Dir: filepath.Join(dir, e.Name()), Err: err.Error()})
		}
		if !ok {
			continue
		}
		name := filepath.Base(base)
		if n, ok := named[strings.ToLower(e.Name())]; ok {
			name = n
		}
		out = append(out, candidate{name: name, source: SourceLlamaCpp, files: files})
	}
	return out, warns
}

// ollamaModelType is the media type of the weights layer of an Ollama model.
const ollamaModelType = "application/vnd.ollama.image.model"

// scanOllama reads Ollama's store: manifests/HOST/NAMESPACE/MODEL/TAG lists
// layers, and the weights are blobs/sha256-HEX. Names are Ollama's own:
// "llama3.2:3b" for its library, "NAMESPACE/MODEL:TAG" for other users'
// models on its registry, "HOST/NAMESPACE/MODEL:TAG" elsewhere.
func scanOllama(dir string) ([]candidate, []Warning) {
	manifests := filepath.Join(dir, "manifests")
	var (
		out   []candidate
		warns []Warning
	)
	err := filepath.WalkDir(manifests, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p == manifests {
				return filepath.SkipAll
			}
			warns = append(warns, Warning{Dir: p, Err: err.Error()})
			return nil
		}
		if d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(manifests, p)
		parts := strings.Split(filepath.ToSlash(rel), "/")
		if len(parts) != 4 {
			return nil
		}
		var man struct {
			Layers []struct {
				MediaType string `json:"mediaType"`
				Digest    string `json:"digest"`
			} `json:"layers"`
		}
		data, err := os.ReadFile(p)
		if err != nil || json.Unmarshal(data, &man) != nil {
			warns = append(warns, Warning{Dir: p, Err: "unreadable Ollama manifest"})
			return nil
		}
		i := slices.IndexFunc(man.Layers, func(l struct {
			MediaType string `json:"mediaType"`
			Digest    string `json:"digest"`
		}) bool {
			return l.MediaType == ollamaModelType
		})
		if i < 0 {
			return nil
		}
		hex, ok := strings.CutPrefix(man.Layers[i].Digest, "sha256:")
		if !ok || !isHex64(hex) {
			return nil
		}
		blob := filepath.Join(dir, "blobs", "sha256-"+hex)
		if _, err := os.Stat(blob); err != nil {
			if _, err2 := os.Stat(filepath.Join(dir, "blobs", "sha256:"+hex)); err2 != nil {
				warns = append(warns, Warning{Dir: p, Err: "its weights are missing: " + err.Error()})
				return nil
			}
			blob = filepath.Join(dir, "blobs", "sha256:"+hex)
		}
		out = append(out, candidate{name: ollamaName(parts), source: SourceOllama, files: []string{blob}, sha256: hex})
		return nil
	})
	if err != nil {
		warns = append(warns, Warning{Dir: manifests, Err: err.Error()})
	}
	return out, warns
}

// ollamaName names a model from its manifest's path: HOST/NAMESPACE/MODEL/TAG.
func ollamaName(parts []string) string {
	host, ns, model, tag := parts[0], parts[1], parts[2], parts[3]
	switch {
	case host == "registry.ollama.ai" && ns == "library":
		return model + ":" + tag
	case host == "registry.ollama.ai":
		return ns + "/" + model + ":" + tag
	}
	return host + "/" + ns + "/" + model + ":" + tag
}

package library

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// ManifestDir is where a node keeps the chunk manifests of the files it
// lets peers copy (see package swarm), one per sha256, in dataDir.
func ManifestDir(dataDir string) string { return filepath.Join(dataDir, "manifests") }

// NoModelError is a name that is no model on this machine.
type NoModelError struct{ Name string }

func (e *NoModelError) Error() string {
	return fmt.Sprintf("there is no model %q on this machine (`potluck models` lists them): nothing was removed", e.Name)
}

// NotFound makes it a 404 on the node API.
func (e *NoModelError) NotFound() bool { return true }

// NotInStoreError is a model that lies outside Potluck's store: another
// tool's, or one of a directory the user named. Potluck never deletes it.
type NotInStoreError struct {
	Model Model
	Store string // Potluck's store
}

func (e *NotInStoreError) Error() string {
	m := e.Model
	where := m.Path
	if n := len(m.Files); n > 1 {
		where = fmt.Sprintf("%s and %d more files beside it", m.Path, n-1)
	}
	how := "remove it with the tool that put it there"
	switch m.Source {
	case SourceOllama:
		how = "remove it with `ollama rm " + strings.TrimSuffix(m.Name, "@"+m.Source) + "`"
	case SourceDir:
		how = "delete the file yourself if you mean to"
	}
	return fmt.Sprintf("%s is %s, at %s: Potluck deletes models only from its own store (%s) and leaves every other file alone; %s",
		m.Name, sourceLabel(m.Source), where, e.Store, how)
}

// Conflict makes it a 409 on the node API: the model is there, but not
// Potluck's to delete.
func (e *NotInStoreError) Conflict() bool { return true }

// sourceLabel says, for a person, whose a model is.
func sourceLabel(source string) string {
	switch source {
	case SourceOllama:
		return "Ollama's"
	case SourceLMStudio:
		return "LM Studio's"
	case SourceHuggingFace:
		return "in Hugging Face's cache"
	case SourceLlamaCpp:
		return "in llama.cpp's cache"
	case SourceDir:
		return "in a directory of models you named (--models-dir)"
	}
	return "not in Potluck's store"
}

// Remove deletes the model name names (any name Find takes) from Potluck's
// store in dataDir: each of its files, the partial downloads kept beside
// them, what the library learned of them, and the chunk manifests
// (ManifestDir) of those files no other model here has. A model whose files
// are not all in the store is never touched: that is a *NotInStoreError; a
// name that is no model here is a *NoModelError. release, when not nil, is
// asked before anything is deleted, and its error stops the removal: the
// model is in use. Remove returns the model it removed.
func (l *Library) Remove(name, dataDir string, release func(Model) error) (Model, error) {
	m, ok := l.Find(name)
	if !ok {
		return Model{}, &NoModelError{Name: name}
	}
	store := StoreDir(dataDir)
	for _, f := range m.Files {
		if !within(store, f.Path) {
			return m, &NotInStoreError{Model: m, Store: store}
		}
	}
	if release != nil {
		if err := release(m); err != nil {
			return m, err
		}
	}
	// The first shard last: while it is there, the model is listed, with
	// a warning naming a shard that could not be deleted.
	var errs []error
	paths := make([]string, 0, len(m.Files))
	for _, f := range slices.Backward(m.Files) {
		if err := os.Remove(f.Path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
			continue
		}
		paths = append(paths, f.Path)
		errs = append(errs, removePartials(f.Path))
	}
	l.hashes.forget(paths)
	if len(paths) == len(m.Files) {
		errs = append(errs, l.removeManifests(m, dataDir))
	}
	for _, p := range paths {
		removeEmptyDirs(store, filepath.Dir(p))
	}
	if err := errors.Join(errs...); err != nil {
		return m, fmt.Errorf("removing %s: %w", m.Name, err)
	}
	return m, nil
}

// within says whether path lies below dir.
func within(dir, path string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != "." && filepath.IsLocal(rel)
}

// removePartials deletes the partial downloads of the file at p: hidden
// files beside it named ".NAME.ID.partial", where ID is part of a sha256 or
// a size (see hub.PartialPath and swarm.PartialPath).
func removePartials(p string) error {
	dir, base := filepath.Split(p)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil // the directory went with its last file
	}
	var errs []error
	for _, e := range entries {
		id, ok := strings.CutPrefix(e.Name(), "."+base+".")
		if id, ok = strings.CutSuffix(id, ".partial"); !ok || e.IsDir() || id == "" || strings.Contains(id, ".") {
			continue
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// removeManifests deletes the chunk manifests of m's files, unless a model
// still here has a file with the same sha256.
func (l *Library) removeManifests(m Model, dataDir string) error {
	left, _ := l.List()
	held := map[string]bool{}
	for _, o := range left {
		for _, f := range o.Files {
			held[f.SHA256] = true
		}
	}
	var errs []error
	for _, f := range m.Files {
		if f.SHA256 == "" || held[f.SHA256] || !isHex64(f.SHA256) {
			continue
		}
		if err := os.Remove(filepath.Join(ManifestDir(dataDir), f.SHA256+".json")); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// removeEmptyDirs deletes dir and its parents while they are empty, up to
// (not including) store: what a pull made for OWNER/REPO.
func removeEmptyDirs(store, dir string) {
	for within(store, dir) {
		if os.Remove(dir) != nil {
			return // not empty, or gone
		}
		dir = filepath.Dir(dir)
	}
}

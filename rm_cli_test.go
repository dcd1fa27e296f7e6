package main

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/potluck-gpu/potluck/engine/enginetest"
	"github.com/potluck-gpu/potluck/hub/hubtest"
	"github.com/potluck-gpu/potluck/internal/nodetest"
)

func writeModel(t *testing.T, p string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustExist(t *testing.T, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s should still be there: %v", p, err)
		}
	}
}

func mustBeGone(t *testing.T, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s is still there (%v)", p, err)
		}
	}
}

// `potluck rm` removes a model from Potluck's store, with no node and
// through a running one: a pulled file, and every shard of a split model
// once the node serves it no more. A model of a --models-dir or of
// Ollama's store is refused and left as it was, and so is a name that is no
// model.
func TestRmCommand(t *testing.T) {
	m := enginetest.TestModel(t)
	h := hubtest.New(t)
	data := h.AddFile(t, "owner/repo", "stories-Q4_K_M.gguf", m.Path)
	env := modelsEnv(t, h, data)
	home := strings.TrimPrefix(env[0], "HOME=")
	ollamaBlob := filepath.Join(home, ".ollama", "models", "blobs", "sha256-"+hubtest.Sum(data))
	dataDir, extra := t.TempDir(), t.TempDir()
	store := filepath.Join(dataDir, "models")
	mine := filepath.Join(extra, "mine.gguf")
	writeModel(t, mine, data)
	shards := enginetest.SplitModel(t, filepath.Join(store, "owner", "split"), "stories")
	pulled := filepath.Join(store, "owner", "repo", "stories-Q4_K_M.gguf")
	offline := []string{"--data-dir", dataDir, "--api", freeAddr(t), "--models-dir", extra} // no node there
	listed := func() []string {
		t.Helper()
		out, errOut, err := runEnv(t, env, "models", "--json", "--data-dir", dataDir, "--models-dir", extra)
		var list struct{ Models []struct{ Name string } }
		if err != nil || json.Unmarshal([]byte(out), &list) != nil {
			t.Fatalf("models --json: %v\n%s%s", err, out, errOut)
		}
		var names []string
		for _, m := range list.Models {
			names = append(names, m.Name)
		}
		return names
	}
	rm := func(where []string, name string) (string, string, error) {
		t.Helper()
		return runEnv(t, env, slices.Concat([]string{"rm"}, where, []string{name})...)
	}

	// With no node: a pulled model goes, with its directory.
	if out, errOut, err := runEnv(t, env, slices.Concat([]string{"pull"}, offline[:4], []string{"hf.co/owner/repo:Q4_K_M"})...); err != nil {
		t.Fatalf("pull: %v\n%s%s", err, out, errOut)
	}
	if names := listed(); !slices.Contains(names, "owner/repo/stories-Q4_K_M") || !slices.Contains(names, "owner/split/stories") {
		t.Fatalf("models before rm: %v", names)
	}
	out, errOut, err := rm(offline, "owner/repo/stories-Q4_K_M")
	if err != nil || !strings.Contains(out, "Removed owner/repo/stories-Q4_K_M") {
		t.Fatalf("rm: %v\n%s%s", err, out, errOut)
	}
	mustBeGone(t, pulled, filepath.Dir(pulled))
	if names := listed(); slices.Contains(names, "owner/repo/stories-Q4_K_M") {
		t.Errorf("models after rm still lists it: %v", names)
	}
	refusals := map[string][]string{
		"mine":               {mine, "only from its own store"},
		"stories:260k":       {ollamaBlob, "Ollama's", "ollama rm stories:260k"},
		"owner/nothing/here": {"no model", "potluck models", "nothing was removed"},
	}
	for name, want := range refusals {
		out, errOut, err := rm(offline, name)
		for _, w := range want {
			if err == nil || !strings.Contains(errOut, w) {
				t.Errorf("rm %s: %v %q %q; want an error that says %q", name, err, out, errOut, w)
			}
		}
	}
	mustExist(t, append(shards, mine, ollamaBlob)...)

	// Through a node: the model it serves only once it serves another.
	p := startPotluckEnv(t, env, "--data-dir", dataDir, "--models-dir", extra, "--model", "owner/split/stories")
	p.WaitStatus(t, "the split model ready", modelReady)
	node := []string{"--api", strings.TrimPrefix(p.API, "http://"), "--data-dir", t.TempDir()} // the node's store, not this one
	if out, errOut, err := rm(node, "owner/split/stories"); err == nil || !strings.Contains(errOut, "serve another model") {
		t.Errorf("rm of the model being served: %v %q %q", err, out, errOut)
	}
	mustExist(t, shards...)
	if out, errOut, err := runEnv(t, env, slices.Concat([]string{"pull"}, node, []string{"owner/repo:Q4_K_M"})...); err != nil {
		t.Fatalf("pull through the node: %v\n%s%s", err, out, errOut)
	}
	out, errOut, err = rm(node, "owner/repo/stories-Q4_K_M")
	if err != nil || !strings.Contains(errOut, "through the node") || !strings.Contains(out, "Removed owner/repo/stories-Q4_K_M") {
		t.Fatalf("rm through the node: %v\n%s%s", err, out, errOut)
	}
	mustBeGone(t, pulled)
	var lib struct{ Models []struct{ Name string } }
	if err := nodetest.GetJSON(p.API+"/api/models", &lib); err != nil || slices.ContainsFunc(lib.Models, func(m struct{ Name string }) bool {
		return m.Name == "owner/repo/stories-Q4_K_M"
	}) {
		t.Errorf("/api/models after rm: %+v, %v", lib, err)
	}
	for name, want := range refusals {
		if out, errOut, err := rm(node, name); err == nil || !strings.Contains(errOut, want[0]) {
			t.Errorf("rm %s through the node: %v %q %q; want an error that says %q", name, err, out, errOut, want[0])
		}
	}
	var st map[string]any
	if status, err := httpPostJSON(p.API+"/api/serve", `{"model":""}`, &st); err != nil || status != 200 {
		t.Fatalf("serve none: %d %v", status, err)
	}
	out, errOut, err = rm(node, "owner/split/stories")
	if err != nil || !strings.Contains(out, "Removed owner/split/stories") || !strings.Contains(out, "files") {
		t.Fatalf("rm of the split model once no longer served: %v\n%s%s", err, out, errOut)
	}
	mustBeGone(t, append(shards, filepath.Dir(shards[0]))...)
	if names := listed(); slices.Contains(names, "owner/split/stories") || !slices.Contains(names, "mine") || !slices.Contains(names, "stories:260k") {
		t.Errorf("models at the end: %v", names)
	}
	mustExist(t, mine, ollamaBlob, store)
}

// The official Ollama client deletes a model of Potluck's store with
// ollama.delete, gets Ollama's 404 for one that is not there, and a refusal
// for Ollama's own model, which stays.
func TestRmWithOllamaClient(t *testing.T) {
	m := enginetest.TestModel(t)
	data, err := os.ReadFile(m.Path)
	if err != nil {
		t.Fatal(err)
	}
	env := modelsEnv(t, hubtest.New(t), data)
	ollamaBlob := filepath.Join(strings.TrimPrefix(env[0], "HOME="), ".ollama", "models", "blobs", "sha256-"+hubtest.Sum(data))
	addr := freeAddr(t)
	p := startPotluckEnv(t, env, "--ollama-api", addr)
	model := filepath.Join(p.DataDir, "models", "owner", "repo", "stories-Q4_K_M.gguf")
	writeModel(t, model, data)
	res := runSDK(t, "ollama_delete.mjs", "POTLUCK_OLLAMA_URL=http://"+addr, "POTLUCK_MODEL=owner/repo/stories-Q4_K_M",
		"POTLUCK_KEEP_MODEL=stories:260k")
	if res.Unknown != 404 {
		t.Errorf("deleting it again: %d, want 404", res.Unknown)
	}
	mustBeGone(t, model)
	mustExist(t, ollamaBlob)
}

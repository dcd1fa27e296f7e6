package server_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/potluck-gpu/potluck/engine/enginetest"
	"github.com/potluck-gpu/potluck/library"
	"github.com/potluck-gpu/potluck/server"
)

// storeNode is a server.Node whose library is a real one, over a store and
// a --models-dir in temporary directories.
type storeNode struct {
	adminNode
	lib     *library.Library
	dataDir string
}

func (n *storeNode) DeleteModel(_ context.Context, name string) (library.Model, error) {
	return n.lib.Remove(name, n.dataDir, nil)
}

// newStoreNode lays out, in a store, owner/repo/stories-Q4_K_M (with a
// partial download beside it) and owner/other/other-F32, and in a
// --models-dir, mine.
func newStoreNode(t *testing.T) (n *storeNode, store, mine string) {
	t.Helper()
	data, err := os.ReadFile(enginetest.TestModel(t).Path)
	if err != nil {
		t.Fatal(err)
	}
	dataDir, extra := t.TempDir(), t.TempDir()
	store = library.StoreDir(dataDir)
	mine = filepath.Join(extra, "mine.gguf")
	for _, p := range []string{
		filepath.Join(store, "owner", "repo", "stories-Q4_K_M.gguf"),
		filepath.Join(store, "owner", "repo", ".stories-Q4_K_M.gguf.0123456789ab.partial"),
		filepath.Join(store, "owner", "other", "other-F32.gguf"),
		mine,
	} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	roots := []library.Root{{Source: library.SourcePotluck, Dir: store}, {Source: library.SourceDir, Dir: extra}}
	lib := library.New(roots, filepath.Join(dataDir, "library.json"), nil)
	return &storeNode{lib: lib, dataDir: dataDir}, store, mine
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// Ollama's DELETE /api/delete removes a model of Potluck's store, with the
// older "name" and the ":latest" tag too, answers as Ollama does, and
// refuses a model outside the store, leaving it as it was.
func TestOllamaDelete(t *testing.T) {
	node, store, mine := newStoreNode(t)
	ts := newOllama(t, server.Config{}, staticRouter{model: "m"}, node)
	del := func(body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodDelete, ts.URL+"/api/delete", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		got, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(got)
	}
	ollamaError := func(body string) string {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal([]byte(body), &e) != nil {
			return ""
		}
		return e.Error
	}

	repo := filepath.Join(store, "owner", "repo")
	if status, body := del(`{"model":"owner/repo/stories-Q4_K_M"}`); status != 200 || body != "" {
		t.Errorf("delete: %d %q, want 200 with no body", status, body)
	}
	if exists(filepath.Join(repo, "stories-Q4_K_M.gguf")) || exists(filepath.Join(repo, ".stories-Q4_K_M.gguf.0123456789ab.partial")) || exists(repo) {
		t.Errorf("the model, its partial download or its empty directory is still in %s", repo)
	}
	if status, body := del(`{"model":"owner/repo/stories-Q4_K_M"}`); status != 404 || ollamaError(body) != "model 'owner/repo/stories-Q4_K_M' not found" {
		t.Errorf("delete again: %d %s, want Ollama's 404", status, body)
	}

	// Ollama's JavaScript client sends "name"; clients add ":latest".
	other := filepath.Join(store, "owner", "other", "other-F32.gguf")
	if status, body := del(`{"name":"owner/other/other-F32:latest"}`); status != 200 || body != "" || exists(other) {
		t.Errorf(`delete {"name": …:latest}: %d %q; the file is there: %v`, status, body, exists(other))
	}
	if !exists(store) {
		t.Errorf("the store %s went with its last model", store)
	}

	// A model of a --models-dir is not Potluck's to delete.
	status, body := del(`{"model":"mine"}`)
	if msg := ollamaError(body); status != 409 || !strings.Contains(msg, mine) || !strings.Contains(msg, "only from its own store") {
		t.Errorf("delete a --models-dir model: %d %s; want a 409 that says where it is and why not", status, body)
	}
	if !exists(mine) {
		t.Fatalf("the --models-dir model %s was deleted", mine)
	}

	for _, body := range []string{`{}`, `{"model":"  "}`, `{"model":`, ``} {
		if status, got := del(body); status != 400 || ollamaError(got) == "" {
			t.Errorf("delete %q: %d %s, want a 400 in Ollama's shape", body, status, got)
		}
	}
}

// The node API's POST /api/models/delete answers with the model removed,
// and in OpenAI's shape a 404 for a model that is not here and a 409 for
// one outside the store.
func TestNodeAPIDeletesAModel(t *testing.T) {
	node, store, mine := newStoreNode(t)
	s, err := server.New(server.Config{Addr: "127.0.0.1:0"}, staticRouter{model: "m"}, node, nil)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)

	resp := post(t, ts.URL+"/api/models/delete", `{"model":"owner/repo"}`) // Q4_K_M is the default quantization
	r := decode(t, resp)
	m, _ := r["model"].(map[string]any)
	files, _ := m["files"].([]any)
	if resp.StatusCode != 200 || r["status"] != "success" || m["name"] != "owner/repo/stories-Q4_K_M" || len(files) != 1 {
		t.Errorf("delete: %s %v", resp.Status, r)
	}
	if exists(filepath.Join(store, "owner", "repo", "stories-Q4_K_M.gguf")) {
		t.Error("the model is still in the store")
	}
	for body, want := range map[string]int{
		`{"model":"owner/repo/stories-Q4_K_M"}`: 404,
		`{"model":"mine"}`:                      409,
		`{"model":""}`:                          400,
	} {
		resp := post(t, ts.URL+"/api/models/delete", body)
		r := decode(t, resp)
		e, _ := r["error"].(map[string]any)
		if resp.StatusCode != want || e["message"] == nil || e["message"] == "" {
			t.Errorf("delete %s: %s %v, want %d with an OpenAI error", body, resp.Status, r, want)
		}
	}
	if !exists(mine) || !exists(filepath.Join(store, "owner", "other", "other-F32.gguf")) {
		t.Error("a model nobody asked to delete is gone")
	}
}

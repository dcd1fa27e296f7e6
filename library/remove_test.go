package library_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/potluck-gpu/potluck/engine/enginetest"
	"github.com/potluck-gpu/potluck/hub/hubtest"
	"github.com/potluck-gpu/potluck/internal/symlink"
	"github.com/potluck-gpu/potluck/library"
)

// Remove deletes a model of Potluck's store with everything Potluck kept
// for it, and nothing else: another tool's model, or one of a
// --models-dir, is refused and left as it was.
func TestRemoveFromTheStoreOnly(t *testing.T) {
	m := enginetest.TestModel(t)
	data, err := os.ReadFile(m.Path)
	if err != nil {
		t.Fatal(err)
	}
	sum := hubtest.Sum(data)
	dataDir, home, env := home(t, data) // the same file in Potluck's store and in Ollama's
	store := library.StoreDir(dataDir)
	extra := t.TempDir()
	write(t, filepath.Join(extra, "mine.gguf"), data)
	single := filepath.Join(store, "owner", "repo", "stories-Q4_K_M.gguf")
	write(t, filepath.Join(store, "owner", "repo", ".stories-Q4_K_M.gguf.0123456789ab.partial"), data[:100])
	write(t, filepath.Join(store, "owner", "repo", ".stories-Q8_0.gguf.0123456789ab.partial"), data[:100]) // another file's
	shards := enginetest.SplitModel(t, filepath.Join(store, "owner", "split"), "stories")
	write(t, filepath.Join(store, "owner", "split", "."+filepath.Base(shards[1])+".4096.partial"), data[:100])

	roots := library.Roots(dataDir, []string{extra}, func(k string) string { return env[k] }, home)
	cache := filepath.Join(dataDir, "library.json")
	lib := library.New(roots, cache, nil)
	lib.HashInBackground(context.Background())
	split, ok := lib.Find("owner/split/stories")
	if !ok || !split.Hashed() || len(split.Files) != len(shards) {
		t.Fatalf("the split model: %+v, %v", split, ok)
	}
	// The manifests a node computed for peers, one per file.
	manifests := library.ManifestDir(dataDir)
	for _, f := range append(split.Files, library.File{SHA256: sum}) {
		write(t, filepath.Join(manifests, f.SHA256+".json"), []byte(`{}`))
	}
	others := snapshot(t, home, dataDir)

	// Refused: other tools' models and a --models-dir's, and a model in use.
	for name, want := range map[string]string{
		"stories:260k":                "Ollama's", // Ollama's own name
		"lmowner/lmrepo/stories-Q8_0": "LM Studio's",
		"hfowner/hfrepo/stories-F32":  "Hugging Face",
		"mine":                        filepath.Join(extra, "mine.gguf"),
	} {
		_, err := lib.Remove(name, dataDir, nil)
		var refused *library.NotInStoreError
		if !errors.As(err, &refused) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), refused.Model.Path) ||
			!strings.Contains(err.Error(), "only from its own store") {
			t.Errorf("Remove(%q) = %v; want a refusal that says %q, where the file is and why not", name, err, want)
		}
	}
	if _, err := lib.Remove("stories:260k", dataDir, nil); err == nil || !strings.Contains(err.Error(), "ollama rm stories:260k") {
		t.Errorf("removing Ollama's model does not say how: %v", err)
	}
	inUse := errors.New("in use")
	if _, err := lib.Remove("owner/repo/stories-Q4_K_M", dataDir, func(library.Model) error { return inUse }); !errors.Is(err, inUse) {
		t.Errorf("Remove of a model in use = %v", err)
	}
	var missing *library.NoModelError
	if _, err := lib.Remove("owner/nothing/here", dataDir, nil); !errors.As(err, &missing) || !missing.NotFound() {
		t.Errorf("Remove of no model = %v, want a NoModelError", err)
	}
	if after := snapshot(t, home, dataDir); !slices.Equal(others, after) {
		t.Errorf("a refused removal wrote outside the store:\nbefore %v\nafter  %v", others, after)
	}
	if _, err := os.Stat(single); err != nil {
		t.Fatalf("a refused removal deleted the store's model: %v", err)
	}

	// The single file: its partial download and cache entry go; its
	// manifest stays, since Ollama's copy of the same bytes is still here.
	got, err := lib.Remove("hf.co/owner/repo:Q4_K_M", dataDir, nil)
	if err != nil || got.Name != "owner/repo/stories-Q4_K_M" {
		t.Fatalf("Remove = %+v, %v", got, err)
	}
	gone(t, single, filepath.Join(store, "owner", "repo", ".stories-Q4_K_M.gguf.0123456789ab.partial"))
	there(t, filepath.Join(store, "owner", "repo", ".stories-Q8_0.gguf.0123456789ab.partial"), filepath.Join(manifests, sum+".json"))

	// The split model: every shard, partial and manifest, and its
	// directory, now empty.
	if got, err := lib.Remove("owner/split/stories", dataDir, nil); err != nil || len(got.Files) != len(shards) {
		t.Fatalf("Remove of the split model = %+v, %v", got, err)
	}
	gone(t, filepath.Join(store, "owner", "split"))
	for _, f := range split.Files {
		gone(t, filepath.Join(manifests, f.SHA256+".json"))
	}
	if _, ok := lib.Find("owner/split/stories"); ok {
		t.Error("the library still lists the split model")
	}
	cached, _ := os.ReadFile(cache)
	for _, p := range append(shards, single) {
		if strings.Contains(string(cached), filepath.ToSlash(filepath.Base(p))) {
			t.Errorf("%s still knows %s", cache, p)
		}
	}
	if after := snapshot(t, home, dataDir); !slices.Equal(others, after) {
		t.Errorf("removing from the store wrote outside it:\nbefore %v\nafter  %v", others, after)
	}
	if _, err := lib.Remove("owner/split/stories", dataDir, nil); !errors.As(err, &missing) {
		t.Errorf("removing it again = %v, want a NoModelError", err)
	}
}

// A link in the store to a file elsewhere is removed; the file is not.
func TestRemoveALinkLeavesItsTarget(t *testing.T) {
	dir := t.TempDir()
	if !symlink.Works(dir) {
		t.Skip("this system makes no symbolic links")
	}
	data, err := os.ReadFile(enginetest.TestModel(t).Path)
	if err != nil {
		t.Fatal(err)
	}
	dataDir := t.TempDir()
	target := filepath.Join(dir, "elsewhere.gguf")
	write(t, target, data)
	link := filepath.Join(library.StoreDir(dataDir), "linked.gguf")
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	lib := library.New([]library.Root{{Source: library.SourcePotluck, Dir: library.StoreDir(dataDir)}}, "", nil)
	if _, err := lib.Remove("linked", dataDir, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(link); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the link is still there: %v", err)
	}
	there(t, target)
}

func gone(t *testing.T, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s is still there (%v)", p, err)
		}
	}
}

func there(t *testing.T, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s should still be there: %v", p, err)
		}
	}
}

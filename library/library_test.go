package library_test

import (
	"context"
	"encoding/json"
	"github.com/potluck-gpu/potluck/internal/symlink"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/potluck-gpu/potluck/engine/enginetest"
	"github.com/potluck-gpu/potluck/hub/hubtest"
	"github.com/potluck-gpu/potluck/library"
)

func write(t *testing.T, p string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// home builds, in a temporary home, the stores of Potluck, Ollama, LM
// Studio, Hugging Face's cache and llama.cpp's cache, each holding the test
// model in that tool's own layout.
func home(t *testing.T, data []byte) (dataDir, home string, env map[string]string) {
	home = t.TempDir()
	dataDir = filepath.Join(home, "potluck")
	sum := hubtest.Sum(data)
	env = map[string]string{}

	// Potluck's store, as a pull leaves it.
	write(t, filepath.Join(dataDir, "models", "owner", "repo", "stories-Q4_K_M.gguf"), data)

	// Ollama: a model from its library and one it pulled from the hub,
	// sharing one blob; and a manifest whose blob is gone.
	ollama := filepath.Join(home, "ollama-models")
	env["OLLAMA_MODELS"] = ollama
	write(t, filepath.Join(ollama, "blobs", "sha256-"+sum), data)
	manifest := func(digest string) []byte {
		b, _ := json.Marshal(map[string]any{
			"schemaVersion": 2,
			"layers": []map[string]any{
				{"mediaType": "application/vnd.ollama.image.model", "digest": "sha256:" + digest, "size": len(data)},
				{"mediaType": "application/vnd.ollama.image.template", "digest": "sha256:" + strings.Repeat("0", 64)},
			},
		})
		return b
	}
	write(t, filepath.Join(ollama, "manifests", "registry.ollama.ai", "library", "stories", "260k"), manifest(sum))
	write(t, filepath.Join(ollama, "manifests", "hf.co", "owner", "ollrepo", "Q8_0"), manifest(sum))
	write(t, filepath.Join(ollama, "manifests", "registry.ollama.ai", "library", "gone", "latest"), manifest(strings.Repeat("a", 64)))

	// LM Studio, with a vision projector beside the model.
	lms := filepath.Join(home, ".lmstudio", "models", "lmowner", "lmrepo")
	write(t, filepath.Join(lms, "stories-Q8_0.gguf"), data)
	write(t, filepath.Join(lms, "mmproj-stories-f16.gguf"), data)

	if !symlink.Works(t.TempDir()) {
		t.Skip("this system makes no symbolic links (Wine, or Windows without Developer Mode): Hugging Face's cache is made of them")
	}
	// Hugging Face's cache: snapshots link into blobs named by sha256.
	hf := filepath.Join(home, ".cache", "huggingface", "hub", "models--hfowner--hfrepo")
	write(t, filepath.Join(hf, "blobs", sum), data)
	write(t, filepath.Join(hf, "refs", "main"), []byte("abc123\n"))
	snap := filepath.Join(hf, "snapshots", "abc123")
	if err := os.MkdirAll(snap, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join("..", "..", "blobs", sum), filepath.Join(snap, "stories-F32.gguf")); err != nil {
		t.Fatal(err)
	}

	// llama.cpp's cache after `llama-server -hf ggml-org/models:…`.
	lc := filepath.Join(home, "llama-cache")
	env["LLAMA_CACHE"] = lc
	write(t, filepath.Join(lc, "ggml-org_models_tinyllamas_stories260K.gguf"), data)
	write(t, filepath.Join(lc, "manifest=ggml-org=models=latest.json"), []byte(`{"ggufFile":{"rfilename":"tinyllamas/stories260K.gguf"}}`))
	return dataDir, home, env
}

func TestLibraryFindsEveryStore(t *testing.T) {
	m := enginetest.TestModel(t)
	data, err := os.ReadFile(m.Path)
	if err != nil {
		t.Fatal(err)
	}
	sum := hubtest.Sum(data)
	dataDir, home, env := home(t, data)

	// A --models-dir with a plain file and a split model missing a shard,
	// and one that is not a directory at all.
	extra := t.TempDir()
	write(t, filepath.Join(extra, "stories260K.gguf"), data)
	write(t, filepath.Join(extra, "big-00001-of-00002.gguf"), data)
	notDir := filepath.Join(extra, "stories260K.gguf")

	roots := library.Roots(dataDir, []string{extra, notDir}, func(k string) string { return env[k] }, home)
	lib := library.New(roots, filepath.Join(dataDir, "library.json"), nil)
	models, warnings := lib.List()

	byName := map[string]library.Model{}
	for _, m := range models {
		byName[m.Name] = m
	}
	want := map[string]string{
		"owner/repo/stories-Q4_K_M":              library.SourcePotluck,
		"stories260K":                            library.SourceDir,
		"stories:260k":                           library.SourceOllama,
		"hf.co/owner/ollrepo:Q8_0":               library.SourceOllama,
		"lmowner/lmrepo/stories-Q8_0":            library.SourceLMStudio,
		"hfowner/hfrepo/stories-F32":             library.SourceHuggingFace,
		"ggml-org/models/tinyllamas/stories260K": library.SourceLlamaCpp,
	}
	for name, source := range want {
		got, ok := byName[name]
		switch {
		case !ok:
			t.Errorf("no model named %q; have %v", name, names(models))
		case got.Source != source:
			t.Errorf("%s: source %q, want %q", name, got.Source, source)
		case got.Size != uint64(len(data)) || got.Arch != "llama" || got.Context == 0 || got.Params == 0 || got.Quant == "":
			t.Errorf("%s: %+v lacks its size or metadata", name, got)
		}
	}
	if len(models) != len(want) {
		t.Errorf("%d models %v, want %d: projectors, incomplete splits and duplicates are not models", len(models), names(models), len(want))
	}
	// Stores that name files by their sha256 need no hashing.
	for _, name := range []string{"stories:260k", "hfowner/hfrepo/stories-F32"} {
		if byName[name].SHA256 != sum {
			t.Errorf("%s: sha256 %q, want %s from the store's own naming", name, byName[name].SHA256, sum)
		}
	}
	for _, w := range []string{"big-00001-of-00002.gguf", "gone", notDir} {
		if !slices.ContainsFunc(warnings, func(x library.Warning) bool { return strings.Contains(x.String(), w) }) {
			t.Errorf("no warning about %s in %v", w, warnings)
		}
	}

	// Names people write find the models, with no network.
	for ask, name := range map[string]string{
		"stories:260k":                                "stories:260k",
		"hf.co/owner/ollrepo:Q8_0":                    "hf.co/owner/ollrepo:Q8_0",
		"hf.co/owner/repo:q4_k_m":                     "owner/repo/stories-Q4_K_M",
		"owner/repo":                                  "owner/repo/stories-Q4_K_M", // Q4_K_M is the default
		"lmowner/lmrepo:Q8_0":                         "lmowner/lmrepo/stories-Q8_0",
		"hfowner/hfrepo/stories-F32.gguf":             "hfowner/hfrepo/stories-F32",
		"ggml-org/models/tinyllamas/stories260K.gguf": "ggml-org/models/tinyllamas/stories260K",
		"stories260K.gguf":                            "stories260K",
	} {
		got, ok := library.Match(models, ask)
		if !ok || got.Name != name {
			t.Errorf("Match(%q) = %q, %v; want %q", ask, got.Name, ok, name)
		}
	}
	for _, ask := range []string{"owner/repo:Q8_0", "stories", "nothing/here:Q4_K_M"} {
		if got, ok := library.Match(models, ask); ok {
			t.Errorf("Match(%q) = %q, want none", ask, got.Name)
		}
	}

	// Other tools' stores are read, never written.
	before := snapshot(t, home, dataDir)
	lib.HashInBackground(context.Background())
	models, _ = lib.List()
	for _, m := range models {
		if m.SHA256 != sum {
			t.Errorf("%s: sha256 %q after hashing, want %s", m.Name, m.SHA256, sum)
		}
	}
	if after := snapshot(t, home, dataDir); !slices.Equal(before, after) {
		t.Errorf("the library wrote outside its data dir:\nbefore %v\nafter  %v", before, after)
	}

	// The checksums outlive the process: a new library knows them.
	lib2 := library.New(roots, filepath.Join(dataDir, "library.json"), nil)
	if m, ok := lib2.Find("stories260K"); !ok || m.SHA256 != sum {
		t.Errorf("a new library: %+v, %v; want the cached sha256", m, ok)
	}
}

func names(models []library.Model) []string {
	var out []string
	for _, m := range models {
		out = append(out, m.Name+" ("+m.Source+")")
	}
	return out
}

// snapshot lists every file under root outside skip, with its size and
// modification time.
func snapshot(t *testing.T, root, skip string) []string {
	var out []string
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return nil
		}
		if p == skip {
			return filepath.SkipDir
		}
		out = append(out, p+" "+fi.ModTime().String())
		return nil
	})
	return out
}

func TestLibraryReadsASplitModelAsOne(t *testing.T) {
	rt := enginetest.Runtime(t)
	split := rt.Server
	split.Path = filepath.Join(filepath.Dir(rt.Server.Path), "llama-gguf-split")
	if _, err := os.Stat(split.Path); err != nil {
		t.Skipf("no llama-gguf-split beside llama-server: %v", err)
	}
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "m"), 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := split.Command(context.Background(), "--split", "--split-max-tensors", "20", enginetest.TestModel(t).Path, filepath.Join(dir, "m", "stories")).CombinedOutput()
	if err != nil {
		t.Fatalf("gguf-split: %v\n%s", err, out)
	}
	shards, _ := filepath.Glob(filepath.Join(dir, "m", "stories-*-of-*.gguf"))
	if len(shards) < 2 {
		t.Fatalf("gguf-split made %v", shards)
	}
	lib := library.New([]library.Root{{Source: library.SourceDir, Dir: dir}}, "", nil)
	models, warnings := lib.List()
	if len(models) != 1 || len(warnings) != 0 {
		t.Fatalf("models %v, warnings %v: want one split model", names(models), warnings)
	}
	m := models[0]
	var size uint64
	for _, s := range shards {
		fi, _ := os.Stat(s)
		size += uint64(fi.Size())
	}
	if m.Name != "m/stories" || len(m.Files) != len(shards) || m.Size != size || m.Path != shards[0] || m.Arch != "llama" {
		t.Errorf("split model %+v: want m/stories with %d files of %d bytes from %s", m, len(shards), size, shards[0])
	}
	lib.HashInBackground(context.Background())
	if m, _ := lib.Find("m/stories"); !m.Hashed() {
		t.Errorf("shards not hashed: %+v", m.Files)
	}
}

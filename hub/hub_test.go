package hub_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/engine/enginetest"
	"github.com/potluck-gpu/potluck/hub"
	"github.com/potluck-gpu/potluck/hub/hubtest"
)

func TestParseRef(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want hub.Ref
	}{
		{"hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M", hub.Ref{Repo: "bartowski/Llama-3.2-1B-Instruct-GGUF", Quant: "Q4_K_M", Rev: "main"}},
		{"huggingface.co/a/b", hub.Ref{Repo: "a/b", Rev: "main"}},
		{"https://huggingface.co/a/b/resolve/v2/sub/x.gguf", hub.Ref{Repo: "a/b", File: "sub/x.gguf", Rev: "v2"}},
		{"https://huggingface.co/a/b/blob/main/x.gguf", hub.Ref{Repo: "a/b", File: "x.gguf", Rev: "main"}},
		{"a/b:q8_0", hub.Ref{Repo: "a/b", Quant: "q8_0", Rev: "main"}},
		{"a/b@dev:Q8_0", hub.Ref{Repo: "a/b", Quant: "Q8_0", Rev: "dev"}},
		{"ggml-org/models/tinyllamas/stories260K.gguf", hub.Ref{Repo: "ggml-org/models", File: "tinyllamas/stories260K.gguf", Rev: "main"}},
	} {
		got, err := hub.ParseRef(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseRef(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"stories260K", "stories260K.gguf", "/abs/path.gguf", "./x/y.gguf", "models/x.gguf",
		"a/b/README.md", "a/b/../c.gguf", "a b/c", "", "hf.co/"} {
		if r, err := hub.ParseRef(bad); err == nil {
			t.Errorf("ParseRef(%q) = %+v, want an error", bad, r)
		}
	}
}

func TestQuantMatches(t *testing.T) {
	for _, tc := range []struct {
		file, tag string
		want      bool
	}{
		{"Llama-3.2-1B-Instruct-Q4_K_M.gguf", "q4_k_m", true},
		{"Llama-3.2-1B-Instruct-IQ4_K_M.gguf", "Q4_K_M", false},
		{"Llama-3.2-1B-Instruct-Q4_K_M.gguf", "Q4_K", false},
		{"model.Q8_0.gguf", "Q8_0", true},
		{"model-Q8_0-00001-of-00002.gguf", "Q8_0", true},
		{"model-f16.gguf", "F16", true},
		{"model-bf16.gguf", "F16", false},
	} {
		if got := hub.QuantMatches(tc.file, tc.tag); got != tc.want {
			t.Errorf("QuantMatches(%q, %q) = %v", tc.file, tc.tag, got)
		}
	}
}

// model is the test model's bytes and sha256.
func model(t *testing.T) ([]byte, string) {
	data, err := os.ReadFile(enginetest.TestModel(t).Path)
	if err != nil {
		t.Fatal(err)
	}
	return data, hubtest.Sum(data)
}

func sumFile(t *testing.T, p string) string {
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}

func pull(t *testing.T, h *hubtest.Hub, ref, store string, progress func(hub.Progress)) ([]string, error) {
	t.Helper()
	r, err := hub.ParseRef(ref)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, paths, err := hub.NewClient(h.URL, "", "potluck-test").Pull(ctx, r, store, progress)
	return paths, err
}

func TestPullByQuantPicksTheFileAndChecksIt(t *testing.T) {
	data, sum := model(t)
	h := hubtest.New(t)
	h.Add("owner/repo", "model-IQ4_K_M.gguf", []byte("GGUF wrong one"))
	h.Add("owner/repo", "model-Q4_K_M.gguf", data)
	h.Add("owner/repo", "mmproj-model-Q4_K_M.gguf", []byte("GGUF projector"))
	h.Add("owner/repo", "README.md", []byte("# hi"))
	store := t.TempDir()

	var seen []hub.Progress
	paths, err := pull(t, h, "hf.co/owner/repo:q4_k_m", store, func(p hub.Progress) { seen = append(seen, p) })
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(store, "owner", "repo", "model-Q4_K_M.gguf")
	if !slices.Equal(paths, []string{want}) {
		t.Fatalf("paths = %v, want %v", paths, want)
	}
	if got := sumFile(t, want); got != sum {
		t.Errorf("sha256 %s, want %s", got, sum)
	}
	last := seen[len(seen)-2] // before "verifying"
	if last.Digest != "sha256:"+sum || last.Total != int64(len(data)) || last.Completed != int64(len(data)) {
		t.Errorf("last progress %+v, want digest, total and completed of the whole file", last)
	}
	if seen[0].Status != "pulling manifest" || !slices.ContainsFunc(seen, func(p hub.Progress) bool { return p.Status == "verifying sha256 digest" }) {
		t.Errorf("progress %+v lacks Ollama's statuses", seen)
	}
	leftovers, _ := filepath.Glob(filepath.Join(store, "owner", "repo", ".*"))
	if len(leftovers) != 0 {
		t.Errorf("partial files left: %v", leftovers)
	}

	// Pulling again finds it whole and downloads nothing.
	before := h.Served()
	if _, err := pull(t, h, "owner/repo/model-Q4_K_M.gguf", store, nil); err != nil {
		t.Fatal(err)
	}
	if h.Served() != before {
		t.Errorf("a second pull downloaded %d bytes", h.Served()-before)
	}
}

func TestPullResumesACutTransfer(t *testing.T) {
	data, sum := model(t)
	h := hubtest.New(t)
	h.Add("owner/repo", "m.gguf", data)
	half := int64(len(data) / 2)
	h.CutNext(half)

	store := t.TempDir()
	var resumed bool
	paths, err := pull(t, h, "owner/repo/m.gguf", store, func(p hub.Progress) {
		resumed = resumed || strings.HasPrefix(p.Status, "interrupted")
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := sumFile(t, paths[0]); got != sum {
		t.Errorf("sha256 %s, want %s", got, sum)
	}
	ranges := h.Ranges()
	if len(ranges) != 2 || ranges[0] != "" || !strings.HasPrefix(ranges[1], "bytes=") || ranges[1] == "bytes=0-" {
		t.Errorf("storage requests had ranges %q: want a full request, then one resuming past the cut", ranges)
	}
	if !resumed {
		t.Error("progress never said the pull was interrupted and resumed")
	}
	if total := h.Served(); total > int64(len(data))+half/4+(1<<20) {
		t.Errorf("served %d bytes for a %d-byte file: the resume started over", total, len(data))
	}
}

func TestPullRejectsACorruptByte(t *testing.T) {
	data, sum := model(t)
	h := hubtest.New(t)
	h.Add("owner/repo", "m.gguf", data)
	h.CorruptNext(int64(len(data) / 3))
	store := t.TempDir()

	var refetched bool
	paths, err := pull(t, h, "owner/repo/m.gguf", store, func(p hub.Progress) {
		refetched = refetched || strings.Contains(p.Status, "corrupt")
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := sumFile(t, paths[0]); got != sum || !refetched {
		t.Errorf("sha256 %s (want %s), refetched %v", got, sum, refetched)
	}

	// Corrupt every time: the pull fails and leaves nothing behind.
	store = t.TempDir()
	h.CorruptNext(10)
	_, err = pull(t, h, "owner/repo/m.gguf", store, func(p hub.Progress) {
		if strings.Contains(p.Status, "corrupt") {
			h.CorruptNext(10)
		}
	})
	var ce *hub.ChecksumError
	if !errors.As(err, &ce) || ce.Want != sum {
		t.Fatalf("err = %v, want a checksum error", err)
	}
	left, _ := filepath.Glob(filepath.Join(store, "owner", "repo", "*"))
	hidden, _ := filepath.Glob(filepath.Join(store, "owner", "repo", ".*"))
	if len(left)+len(hidden) != 0 {
		t.Errorf("a corrupt download left %v %v", left, hidden)
	}
}

func TestPullErrorsSayWhatIsWrong(t *testing.T) {
	data, _ := model(t)
	h := hubtest.New(t)
	h.Add("owner/repo", "m-Q8_0.gguf", data)
	h.Add("owner/repo", "notes.gguf", []byte("these are notes, not a model"))
	h.Add("owner/gated", "m.gguf", data)
	h.Gate("owner/gated", "s3cret")
	store := t.TempDir()

	for _, tc := range []struct {
		ref      string
		want     []string
		notFound bool
	}{
		{"owner/nope:Q4_K_M", []string{"owner/nope", "404"}, true},
		{"owner/repo/missing.gguf", []string{"owner/repo/missing.gguf", "404"}, true},
		{"owner/repo:Q4_K_M", []string{"owner/repo", "Q4_K_M", "Q8_0"}, true},
		{"owner/repo/notes.gguf", []string{"not a GGUF file"}, false},
		{"owner/gated/m.gguf", []string{"gated", "HF_TOKEN"}, false},
	} {
		_, err := pull(t, h, tc.ref, store, nil)
		if err == nil {
			t.Errorf("%s: pulled", tc.ref)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not say %q", tc.ref, err, w)
			}
		}
		if hub.NotFound(err) != tc.notFound {
			t.Errorf("%s: NotFound(%v) = %v", tc.ref, err, !tc.notFound)
		}
	}
	if _, err := os.Stat(filepath.Join(store, "owner", "repo", "notes.gguf")); err == nil {
		t.Error("a file that is not GGUF was kept")
	}

	// With the token the gated repository opens.
	r, _ := hub.ParseRef("owner/gated/m.gguf")
	c := hub.NewClient(h.URL, "s3cret", "")
	if _, _, err := c.Pull(context.Background(), r, store, nil); err != nil {
		t.Fatalf("with HF_TOKEN: %v", err)
	}
}

func TestPullPicksEveryShardOfASplitModel(t *testing.T) {
	h := hubtest.New(t)
	for i := 1; i <= 3; i++ {
		h.Add("owner/big", "Q8_0/big-Q8_0-"+[]string{"", "00001", "00002", "00003"}[i]+"-of-00003.gguf", []byte("GGUF shard "+string(rune('0'+i))))
	}
	h.Add("owner/big", "big-Q4_0.gguf", []byte("GGUF other"))
	paths, err := pull(t, h, "owner/big:Q8_0", t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != 3 || !strings.HasSuffix(paths[0], "-00001-of-00003.gguf") || !strings.HasSuffix(paths[2], "-00003-of-00003.gguf") {
		t.Errorf("paths %v, want the three shards in order", paths)
	}
}

// TestPullOnAFullDisk fills a small tmpfs: the pull stops with an error
// that says so and keeps what it has, and resumes once there is room.
func TestPullOnAFullDisk(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs needs root")
	}
	data, sum := model(t)
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=512k", "potluck-test", dir).CombinedOutput(); err != nil {
		t.Skipf("mount tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
	h := hubtest.New(t)
	h.Add("owner/repo", "m.gguf", data)

	_, err := pull(t, h, "owner/repo/m.gguf", dir, nil)
	if err == nil || !strings.Contains(err.Error(), "disk is full") {
		t.Fatalf("err = %v, want one that says the disk is full", err)
	}
	parts, _ := filepath.Glob(filepath.Join(dir, "owner", "repo", ".*.partial"))
	if len(parts) != 1 {
		t.Fatalf("partial files %v, want one kept", parts)
	}
	fi, _ := os.Stat(parts[0])
	if fi.Size() == 0 {
		t.Fatal("the partial file is empty")
	}
	if out, err := exec.Command("mount", "-o", "remount,size=4m", dir).CombinedOutput(); err != nil {
		t.Fatalf("remount: %v %s", err, out)
	}
	paths, err := pull(t, h, "owner/repo/m.gguf", dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := sumFile(t, paths[0]); got != sum {
		t.Errorf("sha256 %s, want %s", got, sum)
	}
	if r := h.Ranges(); len(r) != 2 || r[1] == "" {
		t.Errorf("ranges %q: the second pull did not resume", r)
	}
}

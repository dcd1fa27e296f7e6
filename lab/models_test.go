package lab_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/engine/ggufgen"
	"github.com/potluck-gpu/potluck/lab"
)

// bigF32 has every weight matrix above llama.cpp's 10 MiB RPC hash
// threshold; about 290 MB.
var bigF32 = ggufgen.TinyLlama{Vocab: 2048, Embd: 1792, Layers: 2, Heads: 14, KVHeads: 14, FF: 4096, Context: 512, Seed: 5}

func fileSHA(t *testing.T, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// allocated is how much of a (sparse) file has been written.
func allocated(p string) int64 {
	var st syscall.Stat_t
	if syscall.Stat(p, &st) != nil {
		return 0
	}
	return st.Blocks * 512
}

// adminPost posts a JSON body to an admin endpoint with a long timeout.
// holders are the names of the peers n sees offering the file with
// sha256 sum.
func holders(n *lab.Node, sum string) []string {
	var peers []struct {
		Name  string `json:"name"`
		Files []struct {
			SHA256 string `json:"sha256"`
		} `json:"files"`
	}
	if n.GetJSON("/api/peers", &peers) != nil {
		return nil
	}
	var out []string
	for _, p := range peers {
		for _, f := range p.Files {
			if f.SHA256 == sum {
				out = append(out, p.Name)
				break
			}
		}
	}
	return out
}

// sharedModel writes m as owner/NAME/NAME-F32.gguf in a new models
// directory the lab's nodes can read, and returns the directory, the file,
// its stat and its sha256.
func sharedModel(t *testing.T, name string, m ggufgen.TinyLlama) (dir, path string, fi os.FileInfo, sum string) {
	dir = t.TempDir()
	os.Chmod(dir, 0o755)
	path = filepath.Join(dir, "owner", name, name+"-F32.gguf")
	os.MkdirAll(filepath.Dir(path), 0o755)
	if err := ggufgen.WriteFile(path, m); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return dir, path, fi, fileSHA(t, path)
}

func adminPost(n *lab.Node, path string, body any, within time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.URL(path), bytes.NewReader(b))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := n.Client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return string(data), fmt.Errorf("%s: %s", resp.Status, data)
	}
	return string(data), nil
}

// Three machines: two hold a model, the third pulls it from both at once
// over links capped at 100 Mbit/s. One holder is killed midway; the other
// sends the rest, and the copy has the right sha256. Then the model is
// split from the puller onto a worker that holds the file: the tunnel
// carries at most 5 % of what a load onto a worker without it carries.
func TestLabModelCopy(t *testing.T) {
	dir, model, fi, sum := sharedModel(t, "big", bigF32)

	nw := lab.New(t, 3, lab.Options{
		Env: []string{"HF_ENDPOINT=http://127.0.0.1:9"}, // no hub: only peers can send it
		Args: func(i int) []string {
			if i == 0 {
				return []string{"--name", "laptop", "--split", "all"}
			}
			return []string{"--name", fmt.Sprintf("holder%d", i), "--share", "worker", "--models-dir", dir}
		},
	})
	puller, h1, h2 := nw.Nodes[0], nw.Nodes[1], nw.Nodes[2]
	h1.RateLimit(100)
	h2.RateLimit(100)
	nw.Wait("both holders offering the file", 60*time.Second, func() bool { return len(holders(puller, sum)) == 2 })

	start := time.Now()
	done := make(chan error, 1)
	go func() {
		_, err := adminPost(puller, "/api/pull", map[string]any{"model": "owner/big/big-F32.gguf", "stream": false}, 5*time.Minute)
		done <- err
	}()
	part := filepath.Join(puller.DataDir, "models", "owner", "big", ".big-F32.gguf."+sum[:12]+".partial")
	nw.Wait("a third of the file copied", 2*time.Minute, func() bool { return allocated(part) >= fi.Size()/3 })
	at := allocated(part)
	h2.Kill()
	killed := time.Since(start)
	if err := <-done; err != nil {
		t.Fatalf("pull: %v\n%s", err, puller.Logs(40))
	}
	took := time.Since(start)
	dest := filepath.Join(puller.DataDir, "models", "owner", "big", "big-F32.gguf")
	if got := fileSHA(t, dest); got != sum {
		t.Fatalf("copied file sha256 %s, want %s", got, sum)
	}
	logs := puller.Logs(400)
	if !strings.Contains(logs, "copying a model file from peers") || !strings.Contains(logs, "peers=2") {
		t.Errorf("the copy did not start from both holders:\n%s", logs)
	}
	t.Logf("LAB copy: %d MB from 2 holders at 100 Mbit/s each, one killed at %.0f%% (%s): done in %s, sha256 right",
		fi.Size()>>20, 100*float64(at)/float64(fi.Size()), killed.Round(time.Millisecond), took.Round(time.Millisecond))

	// The split: h1 has the file; h2 comes back without it as the cold
	// baseline first.
	os.Remove(model)
	h1.Kill()
	h2.Restart()
	tunnel := func() float64 {
		m, err := puller.Metrics()
		if err != nil {
			t.Fatal(err)
		}
		return lab.SumMetric(m, "potluck_tunnel_bytes_total")
	}
	before := tunnel()
	if _, err := adminPost(puller, "/api/serve", map[string]any{"model": "owner/big/big-F32"}, time.Minute); err != nil {
		t.Fatal(err)
	}
	h2id := h2.PeerID()
	nw.Wait("the split onto the worker without the file", 2*time.Minute, func() bool { return planUses(puller, []string{h2id}, nil) })
	cold := tunnel() - before

	// Put the file back for h1 only (the same bytes), and swap the workers.
	if err := ggufgen.WriteFile(model, bigF32); err != nil {
		t.Fatal(err)
	}
	h2.Kill()
	nw.Wait("the head alone", time.Minute, func() bool { return planUses(puller, nil, []string{h2id}) })
	before = tunnel()
	h1.Restart()
	h1.RateLimit(100)
	h1id := h1.PeerID()
	nw.Wait("the split onto the worker with the file", 3*time.Minute, func() bool { return planUses(puller, []string{h1id}, nil) })
	warm := tunnel() - before
	t.Logf("LAB seeded split: tunnel bytes cold %.0f, onto a worker with the file %.0f (%.1f%%)", cold, warm, 100*warm/cold)
	if warm > cold/20 {
		t.Errorf("a split onto a worker with the file carried %.0f bytes, over 5%% of the cold %.0f\n%s", warm, cold, h1.Logs(60))
	}
}

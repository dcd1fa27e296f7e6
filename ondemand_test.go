package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/engine"
	"github.com/potluck-gpu/potluck/engine/enginetest"
	"github.com/potluck-gpu/potluck/engine/ggufgen"
	"github.com/potluck-gpu/potluck/internal/nodetest"
)

// onDemandModels writes three models of real size (about 120, 170 and
// 220 MB) into a folder, and returns it with their footprints at ctx.
func onDemandModels(t *testing.T, ctx int) (dir string, names []string, footprint map[string]uint64) {
	t.Helper()
	dir = t.TempDir()
	footprint = map[string]uint64{}
	for i, layers := range []int{2, 3, 4} {
		name := fmt.Sprintf("ondemand-%c", 'a'+i)
		path := filepath.Join(dir, name+".gguf")
		m := ggufgen.TinyLlama{Vocab: 2048, Embd: 1024, Layers: layers, Heads: 8, KVHeads: 8, FF: 2816, Context: 4096, Seed: int64(i + 1)}
		if err := ggufgen.WriteFile(path, m); err != nil {
			t.Fatal(err)
		}
		est, err := engine.EstimateModel(path, ctx)
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
		footprint[name] = est.TotalBytes
	}
	return dir, names, footprint
}

// loadedDoc is a model /api/status lists as loaded on request.
type loadedDoc struct {
	Name      string     `json:"name"`
	Ready     bool       `json:"ready"`
	InFlight  int        `json:"in_flight"`
	ExpiresAt *time.Time `json:"expires_at"`
}

func (p *proc) loaded(t *testing.T) []loadedDoc {
	t.Helper()
	var st struct {
		Loaded []loadedDoc `json:"loaded"`
	}
	if err := nodetest.GetJSON(p.API+"/api/status", &st); err != nil {
		t.Fatal(err)
	}
	return st.Loaded
}

func loadedNames(ls []loadedDoc) []string {
	var out []string
	for _, l := range ls {
		out = append(out, l.Name)
	}
	slices.Sort(out)
	return out
}

// complete asks model for a few tokens through the OpenAI API.
func (p *proc) complete(model string, tokens int) (int, string, error) {
	body, _ := json.Marshal(map[string]any{"model": model, "prompt": "Once upon a time", "max_tokens": tokens, "temperature": 0})
	resp, err := http.Post(p.API+"/v1/completions", "application/json", bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// starts counts the loads on request of model in the node's log.
func (p *proc) starts(model string) int {
	n := 0
	for _, l := range strings.Split(p.Logs.String(), "\n") {
		if strings.Contains(l, "loading a model on request") && strings.Contains(l, "model="+model+" ") {
			n++
		}
	}
	return n
}

// Three models on disk, room for two: each request loads its model, the
// least recently used idle one makes room, twenty requests at once load a
// model once, a model streaming an answer is not unloaded under it, and
// Ollama's keep_alive 0 unloads at once.
func TestModelsOnDemand(t *testing.T) {
	const ctx = 1024
	dir, names, fp := onDemandModels(t, ctx)
	a, b, c := names[0], names[1], names[2]
	room := fp[b] + fp[c] + fp[a]/2 // any two fit, never three
	ollama := freeAddr(t)
	p := startPotluck(t, "--models-dir", dir, "--ctx-size", fmt.Sprint(ctx), "--models-memory", fmt.Sprint(room),
		"--keep-alive", "10m", "--ollama-api", ollama)

	models := p.waitModels(t, "the three models on disk", func(ms []modelDoc) bool {
		n := 0
		for _, m := range ms {
			if slices.Contains(names, m.ID) {
				n++
			}
		}
		return n == 3
	})
	for _, m := range models {
		if slices.Contains(names, m.ID) && m.Potluck.Availability != "on-disk" {
			t.Errorf("%s is %q before any request, want on-disk", m.ID, m.Potluck.Availability)
		}
	}
	t.Logf("models: %d listed", len(models))

	// Each in turn: a, b, then c, which unloads a.
	for _, m := range []string{a, b, c} {
		code, body, err := p.complete(m, 8)
		if err != nil || code != 200 {
			t.Fatalf("%s: %d %v %s\n%s", m, code, err, body, p.Logs.Last(40))
		}
	}
	if got := loadedNames(p.loaded(t)); !slices.Equal(got, []string{b, c}) {
		t.Fatalf("after a, b and c: loaded %v, want [%s %s]", got, b, c)
	}

	// Twenty at once for a, unloaded: one load (which unloads b).
	before := p.starts(a)
	var wg sync.WaitGroup
	errs := make(chan string, 20)
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if code, body, err := p.complete(a, 4); err != nil || code != 200 {
				errs <- fmt.Sprintf("%d %v %s", code, err, body)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Errorf("a request for %s at once with 19 others: %s", a, e)
	}
	if n := p.starts(a) - before; n != 1 {
		t.Errorf("20 requests at once for %s loaded it %d times, want once", a, n)
	}
	if got := loadedNames(p.loaded(t)); !slices.Equal(got, []string{a, c}) {
		t.Fatalf("after the 20 for a: loaded %v, want [%s %s]", got, a, c)
	}

	// a streams a long answer; b's load must unload c, the idle one.
	body, _ := json.Marshal(map[string]any{"model": a, "prompt": "Once", "max_tokens": 600, "stream": true, "ignore_eos": true, "temperature": 0})
	resp, err := http.Post(p.API+"/v1/completions", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	if !sc.Scan() {
		t.Fatalf("the stream from %s said nothing: %v", a, sc.Err())
	}
	busy := slices.ContainsFunc(p.loaded(t), func(l loadedDoc) bool { return l.Name == a && l.InFlight > 0 })
	if !busy {
		t.Fatalf("%s is not counted busy while it streams: %+v", a, p.loaded(t))
	}
	if code, out, err := p.complete(b, 4); err != nil || code != 200 {
		t.Fatalf("%s while %s streams: %d %v %s", b, a, code, err, out)
	}
	if got := loadedNames(p.loaded(t)); !slices.Equal(got, []string{a, b}) {
		t.Fatalf("after %s while %s streamed: loaded %v, want [%s %s]", b, a, got, a, b)
	}
	chunks, done := 1, false
	for sc.Scan() {
		line := sc.Text()
		if line == "data: [DONE]" {
			done = true
		} else if strings.HasPrefix(line, "data: ") {
			chunks++
		}
	}
	if !done || chunks < 100 {
		t.Fatalf("the stream from %s broke off: %d chunks, done %v, err %v", a, chunks, done, sc.Err())
	}

	// Ollama's ps says until when; keep_alive 0 unloads b once answered.
	var ps struct {
		Models []struct {
			Name      string    `json:"name"`
			ExpiresAt time.Time `json:"expires_at"`
		} `json:"models"`
	}
	if err := nodetest.GetJSON("http://"+ollama+"/api/ps", &ps); err != nil {
		t.Fatal(err)
	}
	for _, m := range ps.Models {
		if until := time.Until(m.ExpiresAt); m.Name == b && (until < 8*time.Minute || until > 10*time.Minute+time.Second) {
			t.Errorf("/api/ps: %s expires in %v, want about 10m (--keep-alive)", m.Name, until)
		}
	}
	gen, _ := json.Marshal(map[string]any{"model": b, "prompt": "Hello", "stream": false, "keep_alive": 0, "options": map[string]any{"num_predict": 4}})
	r2, err := http.Post("http://"+ollama+"/api/generate", "application/json", bytes.NewReader(gen))
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(r2.Body)
	r2.Body.Close()
	if r2.StatusCode != 200 {
		t.Fatalf("generate with keep_alive 0: %d %s", r2.StatusCode, out)
	}
	deadline := time.Now().Add(5 * time.Second)
	for slices.Contains(loadedNames(p.loaded(t)), b) {
		if time.Now().After(deadline) {
			t.Fatalf("%s still loaded 5s after an answer with keep_alive 0: %+v", b, p.loaded(t))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A default keep-alive of 2 seconds: a model stays that long after its
// request, then unloads; /api/status says until when.
func TestModelsKeepAliveDefault(t *testing.T) {
	m := enginetest.TestModel(t)
	dir := t.TempDir()
	if err := os.Symlink(m.Path, filepath.Join(dir, "kept.gguf")); err != nil {
		t.Fatal(err)
	}
	p := startPotluck(t, "--models-dir", dir, "--keep-alive", "2s")
	if code, body, err := p.complete("kept", 4); err != nil || code != 200 {
		t.Fatalf("%d %v %s\n%s", code, err, body, p.Logs.Last(40))
	}
	answered := time.Now()
	ls := p.loaded(t)
	if len(ls) != 1 || ls[0].Name != "kept" || ls[0].ExpiresAt == nil {
		t.Fatalf("loaded after the answer: %+v, want kept with an expiry", ls)
	}
	if until := time.Until(*ls[0].ExpiresAt); until > 2*time.Second || until < 0 {
		t.Errorf("kept expires in %v, want within 2s", until)
	}
	for len(p.loaded(t)) > 0 {
		if time.Since(answered) > 6*time.Second {
			t.Fatalf("still loaded %v after its answer with a 2s keep-alive", time.Since(answered))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if gone := time.Since(answered); gone < 1500*time.Millisecond {
		t.Errorf("unloaded %v after its answer, before its 2s keep-alive", gone)
	}
}

// The web page's picker lists a model on disk as one that loads when
// asked; a chat with it loads it, and the page says until when it stays.
func TestWebPageLoadsOnRequest(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium not found: install Debian's chromium package (make deps does) to run the web page test")
	}
	m := enginetest.TestModel(t)
	dir := t.TempDir()
	if err := os.Symlink(m.Path, filepath.Join(dir, "picked.gguf")); err != nil {
		t.Fatal(err)
	}
	p := startPotluck(t, "--models-dir", dir, "--keep-alive", "30m")
	b := startCDP(t, chromium)
	tab := b.open(t, p.API+"/")
	tab.waitTrue(t, "the model on disk in the picker", `[...document.querySelectorAll("#model option")].some(o => o.value === "picked" && o.textContent.includes("loads when asked"))`, 20*time.Second)
	if err := tab.eval(`document.getElementById("model").value = "picked"; document.getElementById("prompt").value = "Tell me a story"; document.getElementById("chat-form").requestSubmit()`, nil); err != nil {
		t.Fatal(err)
	}
	tab.waitTrue(t, "the answer", `(() => { const m = document.querySelector("#chat-log .msg.assistant"); return m && m.dataset.done === "true" && !m.classList.contains("failed"); })()`, 60*time.Second)
	tab.waitTrue(t, "the model loaded until a time", `document.getElementById("node-facts").innerText.includes("Loaded on request") &&
		/picked · (ready|serving) · until \d/.test(document.getElementById("node-facts").innerText)`, 15*time.Second)
}

// The official Ollama client: list, generate with keep_alive, ps with
// expires_at, and keep_alive 0 to unload.
func TestModelsOnDemandOllamaClient(t *testing.T) {
	m := enginetest.TestModel(t)
	dir := t.TempDir()
	if err := os.Symlink(m.Path, filepath.Join(dir, "asked.gguf")); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	p := startPotluck(t, "--models-dir", dir, "--ollama-api", addr)
	runSDK(t, "ollama_ondemand.mjs", "POTLUCK_OLLAMA_URL=http://"+addr, "POTLUCK_MODEL=asked")
	if ls := p.loaded(t); len(ls) != 0 {
		t.Errorf("loaded after keep_alive 0: %+v", ls)
	}
}

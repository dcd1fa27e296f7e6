// Package enginetest gives tests a real llama.cpp runtime and a real model.
package enginetest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/engine"
	"github.com/potluck-gpu/potluck/engine/ggufgen"
	"github.com/potluck-gpu/potluck/runtimes"
)

// StoriesPrefix is how stories260K's greedy completion from BOS begins.
const StoriesPrefix = "Once upon a time, there was a little girl named Lily"

// Locator is where tests look for llama.cpp: POTLUCK_LLAMA_DIR, PATH and the
// default provisioned runtime (what `make llama` installs): the version this
// Potluck runs, or the newest there is.
func Locator() engine.Locator {
	store := runtimes.Store{Dir: runtimes.DefaultDir()}
	return engine.Locator{
		EnvDir:       os.Getenv("POTLUCK_LLAMA_DIR"),
		PathEnv:      os.Getenv("PATH"),
		ProvisionDir: store.Dir,
		Provisioned:  func() (engine.Runtime, bool) { return store.Runtime(runtimes.DefaultVersion, true) },
	}
}

// Runtime returns the llama.cpp runtime or fails the test: these tests are
// about the real thing, and `make test` provisions it first.
func Runtime(t testing.TB) engine.Runtime {
	t.Helper()
	rt, err := Locator().Find()
	if err != nil {
		t.Fatalf("%v (run `make llama`)", err)
	}
	return rt
}

// Model is a GGUF for tests.
type Model struct {
	Path    string
	Stories bool // the real stories260K, whose greedy output is known
	Alias   string
}

var tinyModel onceModel

// TestModel returns ../shared/models/stories260K.gguf when the checkout has
// it, and otherwise a tiny random llama generated once per test binary.
func TestModel(t testing.TB) Model {
	t.Helper()
	if p, ok := SharedModel(); ok {
		return Model{Path: p, Stories: true, Alias: "stories260K"}
	}
	return GeneratedModel(t)
}

// GeneratedModel returns the tiny random llama, written once per test binary.
func GeneratedModel(t testing.TB) Model {
	t.Helper()
	return Model{Path: tinyModel.get(t, "tiny-llama.gguf", ggufgen.DefaultTinyLlama()), Alias: "tiny-llama"}
}

// SharedModel finds stories260K.gguf in ../shared/models beside the module root.
func SharedModel() (string, bool) {
	dir, err := os.Getwd()
	if err != nil {
		return "", false
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			p := filepath.Join(dir, "..", "shared", "models", "stories260K.gguf")
			if _, err := os.Stat(p); err == nil {
				return filepath.Clean(p), true
			}
			return "", false
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", false
		}
		dir = parent
	}
}

// Options adjust a child that ServerWith or WorkerWith starts.
type Options struct {
	Env     []string // extra environment, e.g. Lavapipe(t)
	LogFile string   // keep all the child's output here too (the ring keeps 200 lines)
}

// Server starts a supervised llama-server for spec and returns its base URL
// once /health answers. It stops with the test.
func Server(t testing.TB, rt engine.Runtime, spec engine.ServerSpec) string {
	t.Helper()
	return ServerWith(t, rt, spec, Options{})
}

// ServerWith is Server with options for the child.
func ServerWith(t testing.TB, rt engine.Runtime, spec engine.ServerSpec, opts Options) string {
	t.Helper()
	if spec.Port == 0 {
		port, err := engine.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		spec.Port = port
	}
	if spec.Threads == 0 {
		spec.Threads = 1 // many threads on a 2-core box is hundreds of times slower
	}
	if spec.CtxSize == 0 {
		spec.CtxSize = 512
	}
	start(t, opts.apply(rt.ServerSupervisorSpec(spec)))
	return fmt.Sprintf("http://127.0.0.1:%d", spec.Port)
}

// Worker starts a supervised RPC worker and returns its address.
func Worker(t testing.TB, rt engine.Runtime, spec engine.WorkerSpec) string {
	t.Helper()
	return WorkerWith(t, rt, spec, Options{})
}

// WorkerWith is Worker with options for the child.
func WorkerWith(t testing.TB, rt engine.Runtime, spec engine.WorkerSpec, opts Options) string {
	t.Helper()
	if spec.Port == 0 {
		port, err := engine.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		spec.Port = port
	}
	if spec.Threads == 0 {
		spec.Threads = 1
	}
	start(t, opts.apply(rt.WorkerSupervisorSpec(spec)))
	return fmt.Sprintf("127.0.0.1:%d", spec.Port)
}

func (o Options) apply(s engine.Spec) *engine.Supervisor {
	s = Quick(s)
	s.Env = append(s.Env, o.Env...)
	s.LogFile = o.LogFile
	return engine.NewSupervisor(s)
}

// Quick makes a spec give up fast, as a test wants.
func Quick(s engine.Spec) engine.Spec {
	s.ReadyTimeout = 60 * time.Second
	s.MaxStarts = 1
	return s
}

func start(t testing.TB, s *engine.Supervisor) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	upCtx, upCancel := context.WithTimeout(ctx, 90*time.Second)
	defer upCancel()
	if err := s.Up(upCtx); err != nil {
		t.Fatalf("start: %v; output: %s", err, strings.Join(s.Tail(10), "\n"))
	}
}

// Complete asks base (an OpenAI-compatible server) for a greedy completion
// from the empty prompt and returns the text.
func Complete(t testing.TB, base string, maxTokens int) string {
	t.Helper()
	text, _ := CompleteTimed(t, base, maxTokens)
	return text
}

// CompleteTimed is Complete that also returns the generation speed
// llama-server measured, in tokens per second (0 from a server that does
// not report timings).
func CompleteTimed(t testing.TB, base string, maxTokens int) (text string, tokensPerSecond float64) {
	t.Helper()
	c := complete(t, base, maxTokens)
	return c.text, c.tokensPerSecond
}

// CompleteDrafted is Complete that also returns what llama-server says of
// speculative decoding: the tokens its draft model guessed, and how many
// of them the model accepted (0 and 0 without a draft).
func CompleteDrafted(t testing.TB, base string, maxTokens int) (text string, drafted, accepted int) {
	t.Helper()
	c := complete(t, base, maxTokens)
	return c.text, c.drafted, c.accepted
}

type completion struct {
	text              string
	tokensPerSecond   float64
	drafted, accepted int
}

func complete(t testing.TB, base string, maxTokens int) completion {
	t.Helper()
	body := fmt.Sprintf(`{"prompt":"","max_tokens":%d,"temperature":0,"seed":1}`, maxTokens)
	resp, err := http.Post(base+"/v1/completions", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Choices []struct {
			Text string `json:"text"`
		} `json:"choices"`
		Timings struct {
			PredictedPerSecond float64 `json:"predicted_per_second"`
			Drafted            int     `json:"draft_n"`
			Accepted           int     `json:"draft_n_accepted"`
		} `json:"timings"`
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("completion: %s", resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || len(out.Choices) == 0 {
		t.Fatalf("completion: %v, %+v", err, out)
	}
	return completion{out.Choices[0].Text, out.Timings.PredictedPerSecond, out.Timings.Drafted, out.Timings.Accepted}
}

// SplitModel splits the test model with llama.cpp's own tool into
// dir/NAME-0000i-of-0000n.gguf and returns the shards; it skips the test
// where llama-gguf-split is not beside llama-server.
func SplitModel(t testing.TB, dir, name string) []string {
	t.Helper()
	rt := Runtime(t)
	split := rt.Server
	split.Path = filepath.Join(filepath.Dir(rt.Server.Path), "llama-gguf-split")
	if _, err := os.Stat(split.Path); err != nil {
		t.Skipf("no llama-gguf-split beside llama-server: %v", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := split.Command(context.Background(), "--split", "--split-max-tensors", "20", TestModel(t).Path, filepath.Join(dir, name)).CombinedOutput()
	if err != nil {
		t.Fatalf("gguf-split: %v\n%s", err, out)
	}
	shards, _ := filepath.Glob(filepath.Join(dir, name+"-*-of-*.gguf"))
	if len(shards) < 2 {
		t.Fatalf("gguf-split made %v", shards)
	}
	return shards
}

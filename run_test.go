package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/engine/enginetest"
	"github.com/potluck-gpu/potluck/internal/nodetest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	nodetest.RemoveBinary()
	os.Exit(code)
}

// proc is a potluck node a root test started, with the readers of its API
// the root tests share.
type proc struct{ *nodetest.Node }

// stop ends the node with SIGINT and fails the test unless it exits within
// 15s.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	if err := p.Stop(os.Interrupt, 15*time.Second); err != nil {
		t.Fatal(err)
	}
}

// startPotluck runs `potluck run args...` on a free API port with its own
// data dir, waits for its API, and stops it at the end of the test.
func startPotluck(t *testing.T, args ...string) *proc {
	t.Helper()
	return startPotluckEnv(t, nil, args...)
}

// startPotluckEnv is startPotluck with extra environment variables.
func startPotluckEnv(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	return &proc{nodetest.Start(t, nodetest.Config{Args: args, Env: append(nodetest.Environ(), env...)})}
}

func modelReady(st map[string]any) bool {
	m, _ := st["model"].(map[string]any)
	return m != nil && m["ready"] == true
}

func TestRunServesModel(t *testing.T) {
	m := enginetest.TestModel(t)
	p := startPotluck(t, "--model", m.Path)
	st := p.WaitStatus(t, "model ready", modelReady)
	if eng, _ := st["engine"].(map[string]any); eng["available"] != true {
		t.Errorf("engine not available in status: %v", st["engine"])
	}

	// Non-streaming completion, identical to llama-server's own greedy output.
	text := enginetest.Complete(t, p.API, 24)
	if m.Stories && !strings.HasPrefix(strings.TrimSpace(text), enginetest.StoriesPrefix) {
		t.Errorf("completion = %q, want %q...", text, enginetest.StoriesPrefix)
	}

	// Models list names the served model.
	var models struct {
		Data []struct{ ID string } `json:"data"`
	}
	if err := nodetest.GetJSON(p.API+"/v1/models", &models); err != nil || len(models.Data) != 1 || models.Data[0].ID != m.Alias {
		t.Errorf("/v1/models = %+v, %v; want %s", models, err, m.Alias)
	}

	// Streaming chat: several SSE chunks, then [DONE].
	body := fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"Tell me a story"}],"max_tokens":16,"temperature":0,"stream":true}`, m.Alias)
	resp, err := http.Post(p.API+"/v1/chat/completions", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Errorf("stream content type = %q", ct)
	}
	chunks, done := 0, false
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		if data == "[DONE]" {
			done = true
			break
		}
		var chunk struct {
			Object string `json:"object"`
		}
		if err := json.Unmarshal([]byte(data), &chunk); err != nil || chunk.Object != "chat.completion.chunk" {
			t.Fatalf("bad chunk %q: %v", data, err)
		}
		chunks++
	}
	if chunks < 2 || !done {
		t.Errorf("stream had %d chunks, done=%v", chunks, done)
	}

	// Bad input gets an OpenAI-style 4xx and leaves the server working.
	for _, tc := range []struct {
		body   string
		status int
	}{
		{`{"prompt": "x", `, http.StatusBadRequest},
		{`{"model":"no-such-model","prompt":"x"}`, http.StatusNotFound},
		{`{"prompt":"x","max_tokens":-1}`, http.StatusBadRequest},
	} {
		resp, err := http.Post(p.API+"/v1/completions", "application/json", strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		var e struct {
			Error struct{ Message, Type string } `json:"error"`
		}
		err = json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if resp.StatusCode != tc.status || err != nil || e.Error.Message == "" || e.Error.Type == "" {
			t.Errorf("%s: status %d, error %+v (%v); want %d with an OpenAI error", tc.body, resp.StatusCode, e, err, tc.status)
		}
	}
	if again := enginetest.Complete(t, p.API, 24); again != text {
		t.Errorf("after bad input: %q, want %q", again, text)
	}
}

func TestRunRefusesMissingModel(t *testing.T) {
	out, err := exec.Command(nodetest.Binary(t), "run", "--data-dir", t.TempDir(), "--model", "/nonexistent/model.gguf").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "/nonexistent/model.gguf") {
		t.Errorf("run with a missing model: err=%v output=%s", err, out)
	}
}

// A --device llama.cpp does not see stops the start, naming those it
// does, rather than serving on the CPU alone.
func TestRunRefusesUnknownDevice(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, nodetest.Binary(t), "run", "--data-dir", t.TempDir(), "--api", freeAddr(t),
		"--device", "CUDA9", "--no-dht", "--no-mdns").CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("run with --device CUDA9 did not stop: %s", out)
	}
	if err == nil || !strings.Contains(string(out), `--device: device "CUDA9": llama.cpp has no such device; it sees CPU`) {
		t.Errorf("run with --device CUDA9: err=%v output=%s", err, out)
	}
}

func TestEngineStatusCommand(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, nodetest.Binary(t), "engine", "status").CombinedOutput()
	if err != nil {
		t.Fatalf("engine status: %v\n%s", err, out)
	}
	for _, want := range []string{"llama-server", "rpc-server", "RPC protocol"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("engine status lacks %q:\n%s", want, out)
		}
	}
}

// A bad POTLUCK_* value stops the node before it starts, naming the
// variable and what it takes, rather than being ignored.
func TestRunRefusesBadEnvironment(t *testing.T) {
	cmd := exec.Command(nodetest.Binary(t), "run", "--data-dir", t.TempDir(), "--api", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "POTLUCK_CTX_SIZE=big", "POTLUCK_SHARE_MEMORY=lots", "POTLUCK_SPLIT=half",
		"POTLUCK_P2P_DISABLE_DHT=maybe", "POTLUCK_P2P_HEARTBEAT=often", "POTLUCK_SHARE=everything")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Fatalf("exit %v, want 2\n%s", err, out)
	}
	for _, want := range []string{`POTLUCK_CTX_SIZE="big"`, "POTLUCK_SHARE_MEMORY", "12GiB", `POTLUCK_SPLIT="half": want fit or all`,
		"POTLUCK_P2P_DISABLE_DHT", "POTLUCK_P2P_HEARTBEAT", "POTLUCK_SHARE=\"everything\": want off, worker or server"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

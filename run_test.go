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
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/engine"
	"github.com/potluck-gpu/potluck/engine/enginetest"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// potluckBinary builds the command once per test run.
func potluckBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "potluck-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "potluck")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// proc is a potluck process started by a test.
type proc struct {
	cmd    *exec.Cmd
	api    string
	logs   *syncBuffer
	exited chan struct{} // closed when the process has exited
}

// stop ends the process with SIGINT and waits for it to exit.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.exited:
	case <-time.After(15 * time.Second):
		t.Fatal("potluck did not stop within 15s of SIGINT")
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startPotluck runs `potluck run args...` on a free API port with its own
// data dir and stops it (SIGTERM, then the test fails if it lingers) at the end.
func startPotluck(t *testing.T, args ...string) *proc {
	t.Helper()
	return startPotluckEnv(t, nil, args...)
}

// startPotluckEnv is startPotluck with extra environment variables.
func startPotluckEnv(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	port, err := engine.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	api := fmt.Sprintf("127.0.0.1:%d", port)
	all := append([]string{"run", "--api", api, "--data-dir", t.TempDir(), "--threads", "1", "--ctx-size", "512", "--log-level", "debug"}, args...)
	cmd := exec.Command(potluckBinary(t), all...)
	// Nothing a test runs asks the machine's router for a port.
	cmd.Env = append(append(os.Environ(), "POTLUCK_P2P_DISABLE_PORT_MAP=1"), env...)
	p := &proc{cmd: cmd, api: "http://" + api, logs: &syncBuffer{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.logs, p.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		err := cmd.Wait()
		close(p.exited)
		done <- err
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			t.Errorf("potluck did not stop within 15s of SIGINT")
		}
		if t.Failed() {
			t.Logf("potluck output:\n%s", p.logs.String())
		}
	})
	p.waitStatus(t, "the API", func(map[string]any) bool { return true })
	return p
}

// waitStatus polls /api/status until ok accepts it.
func (p *proc) waitStatus(t *testing.T, what string, ok func(map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		var st map[string]any
		if err := getJSON(p.api+"/api/status", &st); err == nil && ok(st) {
			return st
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s\n%s", what, p.logs.String())
	return nil
}

// getJSON decodes GET url into v; hdr are header names and values to send.
func getJSON(url string, v any, hdr ...string) error {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func modelReady(st map[string]any) bool {
	m, _ := st["model"].(map[string]any)
	return m != nil && m["ready"] == true
}

func TestRunServesModel(t *testing.T) {
	m := enginetest.TestModel(t)
	p := startPotluck(t, "--model", m.Path)
	st := p.waitStatus(t, "model ready", modelReady)
	if eng, _ := st["engine"].(map[string]any); eng["available"] != true {
		t.Errorf("engine not available in status: %v", st["engine"])
	}

	// Non-streaming completion, identical to llama-server's own greedy output.
	text := enginetest.Complete(t, p.api, 24)
	if m.Stories && !strings.HasPrefix(strings.TrimSpace(text), enginetest.StoriesPrefix) {
		t.Errorf("completion = %q, want %q...", text, enginetest.StoriesPrefix)
	}

	// Models list names the served model.
	var models struct {
		Data []struct{ ID string } `json:"data"`
	}
	if err := getJSON(p.api+"/v1/models", &models); err != nil || len(models.Data) != 1 || models.Data[0].ID != m.Alias {
		t.Errorf("/v1/models = %+v, %v; want %s", models, err, m.Alias)
	}

	// Streaming chat: several SSE chunks, then [DONE].
	body := fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"Tell me a story"}],"max_tokens":16,"temperature":0,"stream":true}`, m.Alias)
	resp, err := http.Post(p.api+"/v1/chat/completions", "application/json", strings.NewReader(body))
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
		resp, err := http.Post(p.api+"/v1/completions", "application/json", strings.NewReader(tc.body))
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
	if again := enginetest.Complete(t, p.api, 24); again != text {
		t.Errorf("after bad input: %q, want %q", again, text)
	}
}

func TestRunRefusesMissingModel(t *testing.T) {
	out, err := exec.Command(potluckBinary(t), "run", "--data-dir", t.TempDir(), "--model", "/nonexistent/model.gguf").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "/nonexistent/model.gguf") {
		t.Errorf("run with a missing model: err=%v output=%s", err, out)
	}
}

func TestEngineStatusCommand(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, potluckBinary(t), "engine", "status").CombinedOutput()
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
	cmd := exec.Command(potluckBinary(t), "run", "--data-dir", t.TempDir(), "--api", "127.0.0.1:0")
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

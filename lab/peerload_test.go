package lab_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/engine/enginetest"
	"github.com/potluck-gpu/potluck/engine/ggufgen"
	"github.com/potluck-gpu/potluck/lab"
	"github.com/potluck-gpu/potluck/sched"
)

// modelsDir puts a copy of the GGUF at src in a new directory the lab's
// nodes can read, as name.gguf; the node's library calls it name.
func modelsDir(t *testing.T, src, name string) string {
	t.Helper()
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".gguf"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// availability is what the node's /v1/models says of model: "" when it
// does not list it.
func availability(n *lab.Node, model string) string {
	var models struct {
		Data []struct {
			ID      string `json:"id"`
			Potluck struct {
				Availability string `json:"availability"`
			} `json:"potluck"`
		} `json:"data"`
	}
	if n.GetJSON("/v1/models", &models) != nil {
		return ""
	}
	for _, m := range models.Data {
		if m.ID == model {
			return m.Potluck.Availability
		}
	}
	return ""
}

// loadedOn says whether the node's /api/status lists model as loaded on
// request, and ready.
func loadedOn(n *lab.Node, model string) bool {
	var st struct {
		Loaded []struct {
			Name  string `json:"name"`
			Ready bool   `json:"ready"`
		} `json:"loaded"`
	}
	if n.GetJSON("/api/status", &st) != nil {
		return false
	}
	for _, l := range st.Loaded {
		if l.Name == model && l.Ready {
			return true
		}
	}
	return false
}

// served is how many tokens (in and out) server's ledger says it served
// asker, by peer id.
func served(n *lab.Node, server, asker string) int {
	var u struct {
		Pairs []struct {
			Server, Asker string
			In            float64 `json:"tokens_in"`
			Out           float64 `json:"tokens_out"`
		} `json:"pairs"`
	}
	if n.GetJSON("/api/usage", &u) != nil {
		return -1
	}
	total := 0
	for _, p := range u.Pairs {
		if p.Server == server && p.Asker == asker {
			total += int(p.In + p.Out + 0.5)
		}
	}
	return total
}

// chat posts a chat request for model to the node's own API and returns
// the status and the error message of the answer, if any.
func chat(n *lab.Node, model string, within time.Duration) (int, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	body, _ := json.Marshal(map[string]any{"model": model, "max_tokens": 4,
		"messages": []map[string]string{{"role": "user", "content": "hi"}}})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.URL("/v1/chat/completions"), bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := n.Client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	var e struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	json.Unmarshal(data, &e)
	if e.Error.Message == "" {
		e.Error.Message = string(data)
	}
	return resp.StatusCode, e.Error.Message, nil
}

// Three machines: a holder shares as a server with no model of its own
// and one in its models directory; a refuser does the same with another
// model but --allow-peer-loads=false; a client shares nothing and has no
// model. The client's request for the holder's model has the holder load
// it and answers, and the holder's ledger counts it; a request for the
// refuser's model is refused with a message that names the flag.
func TestLabPeerLoad(t *testing.T) {
	enginetest.Runtime(t)
	m := enginetest.TestModel(t)
	const held, refused = "peerload-held", "peerload-refused"
	heldDir := modelsDir(t, m.Path, held)
	refusedDir := t.TempDir()
	os.Chmod(refusedDir, 0o755)
	other := ggufgen.DefaultTinyLlama()
	other.Seed = 7 // another file: the two holders offer different models
	if err := ggufgen.WriteFile(filepath.Join(refusedDir, refused+".gguf"), other); err != nil {
		t.Fatal(err)
	}
	nw := lab.New(t, 3, lab.Options{Args: func(i int) []string {
		switch i {
		case 0:
			return []string{"--name", "holder", "--share", "server", "--models-dir", heldDir}
		case 1:
			return []string{"--name", "refuser", "--share", "server", "--models-dir", refusedDir, "--allow-peer-loads=false"}
		}
		return []string{"--name", "client"}
	}})
	holder, refuser, client := nw.Nodes[0], nw.Nodes[1], nw.Nodes[2]
	holderID, clientID := holder.PeerID(), client.PeerID()

	took := nw.Wait("the client listing both models on members' disks", 90*time.Second, func() bool {
		return availability(client, held) == "peer-disk" && availability(client, refused) == "peer-disk"
	})
	t.Logf("LAB peerload: the client lists both members' models as peer-disk after %s", took.Round(time.Millisecond))
	if p, ok := client.PeerByName("refuser"); !ok || !p.NoPeerLoads {
		t.Errorf("the client does not see that the refuser loads nothing for members: %+v", p)
	}
	if p, ok := client.PeerByName("holder"); !ok || p.NoPeerLoads {
		t.Errorf("the client sees the holder as refusing loads: %+v", p)
	}

	// Refused: a clear error that names the flag, and nothing loaded.
	status, msg, err := chat(client, refused, time.Minute)
	if err != nil {
		t.Fatalf("request for %s: %v", refused, err)
	}
	if status != http.StatusForbidden || !strings.Contains(msg, "--allow-peer-loads") {
		t.Errorf("request for %s on a refuser: %d %q; want 403 naming --allow-peer-loads (%q)", refused, status, msg, sched.LoadsRefused)
	}
	if !strings.Contains(msg, "refuser") {
		t.Errorf("the refusal does not say which member refused: %q", msg)
	}
	if loadedOn(refuser, refused) || availability(client, refused) != "peer-disk" {
		t.Errorf("the refuser loaded %s anyway", refused)
	}
	t.Logf("LAB peerload: refused with %d %q", status, msg)

	// Loaded on request: the first request waits for the load.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	c, err := client.CompleteModel(ctx, held, 8)
	if err != nil {
		t.Fatalf("request for %s, on the holder's disk: %v\n%s", held, err, holder.Quiet(40))
	}
	first := time.Since(start)
	if c.Text == "" || c.Tokens == 0 {
		t.Errorf("request for %s: empty answer %+v", held, c)
	}
	if !strings.HasPrefix(c.Node, "holder/") {
		t.Errorf("request for %s served by %q, want the holder", held, c.Node)
	}
	if m.Stories && !strings.HasPrefix(enginetest.StoriesPrefix, strings.TrimSpace(c.Text)) {
		t.Errorf("stories260K answered %q, want the start of %q", c.Text, enginetest.StoriesPrefix)
	}
	if !loadedOn(holder, held) {
		t.Errorf("the holder's /api/status does not list %s as loaded after serving it", held)
	}
	nw.Wait("the client listing the model as peer-loaded", time.Minute, func() bool {
		return availability(client, held) == "peer-loaded"
	})
	want := c.Prompt + c.Tokens
	nw.Wait("the holder's ledger counting the client's request", time.Minute, func() bool {
		return served(holder, holderID, clientID) == want
	})

	// A second request goes to the loaded model.
	start = time.Now()
	c2, err := client.CompleteModel(ctx, held, 8)
	if err != nil {
		t.Fatalf("second request for %s: %v", held, err)
	}
	if c2.Text != c.Text {
		t.Errorf("the loaded model answered %q, the first request %q", c2.Text, c.Text)
	}
	t.Logf("LAB peerload: first request (load included) %s, second %s; %d tokens in the holder's ledger for the client",
		first.Round(time.Millisecond), time.Since(start).Round(time.Millisecond), want)
}

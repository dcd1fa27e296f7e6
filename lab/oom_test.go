package lab_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/engine/enginetest"
	"github.com/potluck-gpu/potluck/internal/memcg"
	"github.com/potluck-gpu/potluck/internal/nodetest"
	"github.com/potluck-gpu/potluck/lab"
)

// llama-server killed by the kernel's out-of-memory killer in the middle of
// an answer (its memory cgroup's limit, as a container's would be): the
// answer ends at once in an error event the client's SDK raises, not in
// silence or a hang; the node restarts its model, says why on its status,
// and answers again.
func TestLabOOMMidStream(t *testing.T) {
	enginetest.Runtime(t)
	m := enginetest.TestModel(t)
	nw := lab.New(t, 1, lab.Options{Args: func(int) []string {
		return []string{"--model", m.Path, "--ctx-size", "4096"}
	}})
	a := nw.Nodes[0]
	nw.Wait("a's model", 60*time.Second, func() bool { st, err := a.Status(); return err == nil && st.ModelReady() })
	victim, err := a.Child("llama-server")
	if err != nil {
		t.Fatal(err)
	}
	// What it holds stays charged where it was; it may take 1 MiB more.
	g, err := memcg.New("potluck-lab-oom", 1<<20)
	if err != nil {
		t.Skipf("no memory cgroup to run llama-server in: %v", err)
	}
	t.Cleanup(func() { g.Close() })

	var killed time.Time
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s := nodetest.ChatStream{Model: m.Alias, MaxTokens: 3000, AfterFirst: func() {
		// Hold it still, put it in the cgroup, and hand it a request whose
		// 4 MB prompt it must read into memory: when it goes on, the
		// kernel kills it, with the answer half sent.
		_ = syscall.Kill(victim.PID, syscall.SIGSTOP)
		if err := g.Add(victim.PID); err != nil {
			t.Errorf("put llama-server in the cgroup: %v", err)
		}
		go pressure(ctx, a, victim)
		time.Sleep(300 * time.Millisecond)
		killed = time.Now()
		_ = syscall.Kill(victim.PID, syscall.SIGCONT)
	}}.Run(ctx, a.Client, a.URL(""))
	ended := time.Since(killed)
	t.Logf("the stream: %d chunks, done %v, error event %q, err %v; ended %s after the kill", s.Chunks, s.Done, s.ErrorEvent, s.Err, ended.Round(time.Millisecond))
	if n := g.OOMKills(); n != 1 {
		t.Fatalf("the cgroup counts %d out-of-memory kills; want llama-server's", n)
	}
	if s.Status != http.StatusOK || s.Chunks == 0 || s.Done || !strings.Contains(s.ErrorEvent, "broke off") {
		t.Errorf("the answer cut by the kill: %+v; want it to end in an error event", s)
	}
	if ended > 10*time.Second {
		t.Errorf("the stream ended %s after the kill", ended)
	}

	back := nw.Wait("a's model back", 60*time.Second, func() bool {
		st, err := a.Status()
		c, cerr := a.Child("llama-server")
		return err == nil && st.ModelReady() && cerr == nil && c.PID != victim.PID
	})
	t.Logf("LAB oom: the stream ended %.2fs after the kill, the model was back %.1fs after it", ended.Seconds(), back.Seconds()+ended.Seconds())
	st, err := a.Status()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(st.Warnings, func(w lab.Warning) bool {
		return strings.HasPrefix(w.Code, "model-restarted") && strings.Contains(w.Message, "out-of-memory killer")
	}) {
		t.Errorf("status warnings %+v; want one that says the out-of-memory killer stopped the model", st.Warnings)
	}
	cctx, ccancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer ccancel()
	if c, err := a.Complete(cctx, 8); err != nil || c.Tokens == 0 {
		t.Errorf("a request after the restart: %+v, %v", c, err)
	}
}

// pressure sends llama-server, on its own port, a request with a 4 MB
// prompt.
func pressure(ctx context.Context, a *lab.Node, c lab.Child) {
	i := slices.Index(c.Args, "--port")
	if i < 0 || i+1 >= len(c.Args) {
		return
	}
	body := fmt.Sprintf(`{"prompt":%q,"n_predict":1}`, strings.Repeat("once upon a time ", 4<<20/17))
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://127.0.0.1:"+c.Args[i+1]+"/completion", strings.NewReader(body))
	if err != nil {
		return
	}
	req.Header.Set("Content-Type", "application/json")
	if resp, err := a.Client.Do(req); err == nil {
		resp.Body.Close()
	}
}

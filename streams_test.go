package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/engine/enginetest"
	"github.com/potluck-gpu/potluck/internal/nodetest"
)

// Streamed answers reach their end, one after another, in each API a
// node speaks: none is cut off between the node and its llama-server,
// whose answers begin while the request is still being handed on, and
// whose kept-alive connections close between requests.
func TestStreamsReachTheirEnd(t *testing.T) {
	m := enginetest.TestModel(t)
	p := startPotluck(t, "--model", m.Path)
	p.WaitStatus(t, "model ready", modelReady)
	apis := []struct{ path, body, end string }{
		{"/v1/chat/completions", `{"model":%q,"stream":true,"max_tokens":12,"messages":[{"role":"user","content":"Hi %d"}]}`, "data: [DONE]"},
		// Cut at max_output_tokens, a response ends incomplete, as OpenAI's.
		{"/v1/responses", `{"model":%q,"stream":true,"max_output_tokens":12,"input":"Hi %d"}`, "response.completed|response.incomplete"},
		{"/v1/messages", `{"model":%q,"stream":true,"max_tokens":12,"messages":[{"role":"user","content":"Hi %d"}]}`, "message_stop"},
	}
	client := &http.Client{Timeout: 30 * time.Second}
	const n, clients = 150, 3
	var (
		mu     sync.Mutex
		broken []string
		wg     sync.WaitGroup
	)
	for c := range clients {
		wg.Go(func() {
			for i := c; i < n; i += clients {
				api := apis[i%len(apis)]
				fail := ""
				resp, err := client.Post(p.API+api.path, "application/json", strings.NewReader(fmt.Sprintf(api.body, m.Alias, i)))
				if err != nil {
					fail = fmt.Sprintf("%d %s: %v", i, api.path, err)
				} else {
					body, err := io.ReadAll(resp.Body)
					resp.Body.Close()
					if err != nil || resp.StatusCode != http.StatusOK || !containsOneOf(string(body), api.end) {
						fail = fmt.Sprintf("%d %s: %d %v after %d bytes", i, api.path, resp.StatusCode, err, len(body))
					}
				}
				if fail != "" {
					mu.Lock()
					broken = append(broken, fail)
					mu.Unlock()
				}
				time.Sleep(time.Duration(i%5) * time.Millisecond) // some connections reused at once, some after a pause
			}
		})
	}
	wg.Wait()
	if len(broken) > 0 {
		t.Errorf("%d of %d streams did not reach their end:\n%s\n%s", len(broken), n, strings.Join(broken, "\n"), p.Logs.String())
	}
}

// containsOneOf says whether body holds one of the ends, separated by |.
func containsOneOf(body, ends string) bool {
	for _, end := range strings.Split(ends, "|") {
		if strings.Contains(body, end) {
			return true
		}
	}
	return false
}

// An answer whose llama-server dies mid-stream makes the official clients
// raise an error: the stream ends in an error event of their API, not in
// a silence they would take for the whole answer.
func TestSDKsRaiseABrokenAnswer(t *testing.T) {
	m := enginetest.TestModel(t)
	p := startPotluck(t, "--model", m.Path, "--ctx-size", "4096")
	last := 0
	for _, sdk := range []string{"openai", "anthropic"} {
		t.Run(sdk, func(t *testing.T) {
			var c nodetest.Child
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := p.Poll(ctx, 50*time.Millisecond, "a new llama-server, ready", func() bool {
				var err error
				c, err = nodetest.FindChild(p.PID(), "llama-server")
				var st map[string]any
				return err == nil && c.PID != last && p.Status(&st) == nil && modelReady(st)
			}); err != nil {
				t.Fatal(err)
			}
			last = c.PID
			runSDK(t, "broken.mjs", "POTLUCK_BASE_URL="+p.API, "POTLUCK_MODEL="+m.Alias,
				"POTLUCK_SDK="+sdk, "POTLUCK_KILL_PID="+strconv.Itoa(c.PID))
		})
	}
}

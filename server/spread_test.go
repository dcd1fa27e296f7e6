package server_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/server"
)

// slowSSE streams max_tokens (default n) server-sent events, one every gap,
// like a busy llama-server.
func slowSSE(def int, gap time.Duration) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		n := def
		var req struct {
			MaxTokens int `json:"max_tokens"`
		}
		if json.NewDecoder(r.Body).Decode(&req) == nil && req.MaxTokens > 0 {
			n = req.MaxTokens
		}
		w.Header().Set("Content-Type", "text/event-stream")
		for i := 0; i < n; i++ {
			fmt.Fprintf(w, "data: {\"choices\":[{\"delta\":{\"content\":\"t%d\"}}]}\n\n", i)
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(gap):
			}
		}
		fmt.Fprint(w, "data: [DONE]\n\n")
	}
}

// A stream counts as in flight until it ends, not when its headers arrive:
// while one backend streams, every new request goes to the idle one.
func TestLeastInFlightCountsWholeStreams(t *testing.T) {
	a := httptest.NewServer(slowSSE(20, 25*time.Millisecond))
	defer a.Close()
	b := httptest.NewServer(slowSSE(20, 25*time.Millisecond))
	defer b.Close()
	ts := newServer(t, server.Config{}, staticRouter{model: "m", backends: []server.Backend{
		{Node: "a/1", BaseURL: a.URL}, {Node: "b/2", BaseURL: b.URL},
	}})
	count := map[string]int{}
	var open []*http.Response
	for i := 0; i < 6; i++ {
		resp := post(t, ts.URL+"/v1/chat/completions", `{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
		count[resp.Header.Get("X-Potluck-Node")]++
		open = append(open, resp) // headers are in; the stream goes on
	}
	if count["a/1"] != 3 || count["b/2"] != 3 {
		t.Errorf("6 overlapping streams split %v, want 3 and 3", count)
	}
	for _, r := range open {
		io.Copy(io.Discard, r.Body)
		r.Body.Close()
	}

	// One long stream on a; the next requests all go to b while it lasts.
	first := post(t, ts.URL+"/v1/chat/completions", `{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}],"max_tokens":100}`)
	busy := first.Header.Get("X-Potluck-Node")
	for i := 0; i < 3; i++ {
		resp := post(t, ts.URL+"/v1/chat/completions", `{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}],"max_tokens":4}`)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if got := resp.Header.Get("X-Potluck-Node"); got == busy {
			t.Errorf("request %d went to %s, which had a stream in flight", i, got)
		}
	}
	io.Copy(io.Discard, first.Body)
	first.Body.Close()
}

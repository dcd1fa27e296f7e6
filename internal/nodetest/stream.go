package nodetest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Stream is how one streamed chat request ended.
type Stream struct {
	Node   string // X-Potluck-Node
	Status int    // 0 when no answer came
	Chunks int    // data events before [DONE]
	Done   bool   // saw [DONE]
	// ErrorEvent is the message of an error event the stream ended in.
	ErrorEvent string
	Err        error
	Elapsed    time.Duration
}

// Outcome classifies a stream the way the reliability scenarios count them.
type Outcome int

const (
	Completed         Outcome = iota // 200 and [DONE]
	FailedAfterStream                // streamed, then broke: allowed
	FailedBefore                     // an error before any token reached the client
	Hung                             // still going when the client gave up
)

func (o Outcome) String() string {
	return [...]string{"completed", "failed_after_stream", "failed_before_stream", "hung"}[o]
}

// Outcome classifies s; limit is how long the client waited.
func (s Stream) Outcome(limit time.Duration) Outcome {
	switch {
	case s.Status == http.StatusOK && s.Done:
		return Completed
	case s.Elapsed >= limit:
		return Hung
	case s.Status == http.StatusOK && s.Chunks > 0:
		return FailedAfterStream
	default:
		return FailedBefore
	}
}

// StreamChat sends a streamed chat request for model to the API at base
// (e.g. http://127.0.0.1:8080) with client, and reads it to the end or
// until ctx ends.
func StreamChat(ctx context.Context, client *http.Client, base, model string, maxTokens int) Stream {
	return ChatStream{Model: model, MaxTokens: maxTokens}.Run(ctx, client, base)
}

// ChatStream is a streamed chat request.
type ChatStream struct {
	Model     string
	MaxTokens int
	// AfterFirst, when set, runs once the first event has arrived, while
	// the answer is still streaming.
	AfterFirst func()
}

// Run sends the request to the API at base with client, and reads the
// answer to its end or until ctx ends.
func (cs ChatStream) Run(ctx context.Context, client *http.Client, base string) Stream {
	start := time.Now()
	body := fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"Tell me a story"}],"max_tokens":%d,"stream":true}`, cs.Model, cs.MaxTokens)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/chat/completions", strings.NewReader(body))
	if err != nil {
		return Stream{Err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return Stream{Err: err, Elapsed: time.Since(start)}
	}
	defer resp.Body.Close()
	s := Stream{Node: resp.Header.Get("X-Potluck-Node"), Status: resp.StatusCode}
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		s.Err = fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(msg)))
		s.Elapsed = time.Since(start)
		return s
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		data, ok := strings.CutPrefix(line, "data: ")
		switch {
		case line == "data: [DONE]":
			s.Done = true
		case ok && strings.HasPrefix(data, `{"error"`):
			var e struct {
				Error struct {
					Message string `json:"message"`
				} `json:"error"`
			}
			_ = json.Unmarshal([]byte(data), &e)
			s.ErrorEvent = e.Error.Message
		case ok:
			s.Chunks++
			if s.Chunks == 1 && cs.AfterFirst != nil {
				cs.AfterFirst()
			}
		}
	}
	s.Err = sc.Err()
	s.Elapsed = time.Since(start)
	return s
}

package server

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/potluck-gpu/potluck/ledger"
)

// Captured from llama-server 0.7.0: the end of a chat stream with usage, a
// Responses stream, an Anthropic stream, and plain answers.
const (
	chatStreamTail = `data: {"choices":[{"finish_reason":"length","index":0,"delta":{}}],"object":"chat.completion.chunk"}

data: {"choices":[],"object":"chat.completion.chunk","usage":{"completion_tokens":3,"prompt_tokens":42,"total_tokens":45},"timings":{"prompt_n":42,"prompt_ms":7.5,"predicted_n":3,"predicted_ms":1.7}}

data: [DONE]
`
	responsesStreamTail = `event: response.completed
data: {"type":"response.completed","response":{"status":"completed","usage":{"input_tokens":49,"output_tokens":4,"total_tokens":53}},"timings":{"prompt_n":1,"predicted_n":4}}
`
	anthropicStreamTail = `event: message_start
data: {"type":"message_start","message":{"usage":{"input_tokens":1,"output_tokens":0}}}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"max_tokens"},"usage":{"output_tokens":7}}

event: message_stop
data: {"type":"message_stop"}
`
)

func TestTokenCounter(t *testing.T) {
	for _, tc := range []struct {
		name   string
		chunks []string
		want   int
	}{
		{"chat stream with usage", []string{"data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n\n", chatStreamTail}, 3},
		{"responses stream", []string{responsesStreamTail}, 4},
		{"anthropic stream", []string{anthropicStreamTail}, 7},
		{"split across writes", []string{`{"usage":{"completion_tokens":1`, `2,"prompt_tokens":5}}`}, 12},
		{"plain answer", []string{`{"choices":[],"usage":{"completion_tokens":9,"prompt_tokens":2}}`}, 9},
		{"chunks only", []string{"data: {}\n\ndata: {}\n\ndata: {}\n\ndata: {}\n\ndata: {}\n\n"}, 3},
		{"embeddings", []string{`{"data":[{"embedding":[0.1]}],"usage":{"prompt_tokens":4,"total_tokens":4}}`}, 0},
	} {
		var tc2 ledger.Counter
		for _, c := range tc.chunks {
			tc2.Write([]byte(c))
		}
		if got := tc2.Out(); got != tc.want {
			t.Errorf("%s: %d tokens, want %d", tc.name, got, tc.want)
		}
	}
}

func TestOpenAIMessages(t *testing.T) {
	in := []ollamaMessage{
		{Role: "system", Content: "be brief"},
		{Role: "user", Content: "what is this?", Images: []string{"iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="}},
		{Role: "assistant", ToolCalls: []ollamaToolCall{
			{Function: ollamaFunction{Name: "weather", Arguments: json.RawMessage(`{"city":"Oslo"}`)}},
			{Function: ollamaFunction{Name: "time", Arguments: json.RawMessage(`"{\"tz\":\"UTC\"}"`)}},
		}},
		{Role: "tool", Content: "rain", ToolName: "weather"},
		{Role: "tool", Content: "noon", ToolName: "time"},
	}
	out, err := openAIMessages(in)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(out)
	for _, want := range []string{
		`{"content":"be brief","role":"system"}`,
		`"image_url":{"url":"data:image/png;base64,iVBOR`,
		`{"function":{"arguments":"{\"city\":\"Oslo\"}","name":"weather"},"id":"call_0","type":"function"}`,
		`{"function":{"arguments":"{\"tz\":\"UTC\"}","name":"time"},"id":"call_1","type":"function"}`,
		`{"content":"rain","name":"weather","role":"tool","tool_call_id":"call_0"}`,
		`{"content":"noon","name":"time","role":"tool","tool_call_id":"call_1"}`,
	} {
		if !strings.Contains(string(got), want) {
			t.Errorf("messages lack %s:\n%s", want, got)
		}
	}
	if _, err := openAIMessages([]ollamaMessage{{Role: "user", Images: []string{"not base64!"}}}); err == nil {
		t.Error("an image that is not base64 was accepted")
	}
	if _, err := openAIMessages([]ollamaMessage{{Content: "who am I"}}); err == nil {
		t.Error("a message without a role was accepted")
	}
}

func TestOllamaParams(t *testing.T) {
	stream := false
	in := ollamaCommon{Stream: &stream, Format: json.RawMessage(`{"type":"object"}`), Think: json.RawMessage(`false`),
		Options: map[string]any{"temperature": 0.0, "num_predict": 16.0, "num_ctx": 4096.0, "stop": []any{"\n"}, "num_keep": 4.0}}
	req := map[string]any{}
	if err := in.openAIParams(req); err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(req)
	want := `{"chat_template_kwargs":{"enable_thinking":false},"max_tokens":16,"n_keep":4,"response_format":{"json_schema":{"name":"response","schema":{"type":"object"}},"type":"json_schema"},"stop":["\n"],"temperature":0}`
	if string(got) != want {
		t.Errorf("params:\n got %s\nwant %s", got, want)
	}
	for _, bad := range []ollamaCommon{
		{Format: json.RawMessage(`"yaml"`)},
		{Options: map[string]any{"num_predict": "many"}},
	} {
		if err := bad.openAIParams(map[string]any{}); err == nil {
			t.Errorf("%+v was accepted", bad)
		}
	}
}

// A streamed chat completion with tool calls in pieces becomes Ollama's
// NDJSON: text lines, one line with the whole calls, and a last line with
// the counts.
func TestOllamaStreamTranslation(t *testing.T) {
	stream := `data: {"choices":[{"delta":{"role":"assistant","content":null}}]}

data: {"choices":[{"delta":{"content":"Hel"}}]}

data: {"choices":[{"delta":{"reasoning_content":"hmm"}}]}

data: {"choices":[{"delta":{"content":"lo"}}]}

data: {"choices":[{"delta":{"tool_calls":[{"index":0,"id":"c","type":"function","function":{"name":"weather","arguments":"{\"ci"}}]}}]}

data: {"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"ty\":\"Oslo\"}"}}]}}]}

` + chatStreamTail
	gin.SetMode(gin.ReleaseMode)
	rec := httptest.NewRecorder()
	c, _ := gin.CreateTestContext(rec)
	resp := &http.Response{StatusCode: 200, Body: http.NoBody}
	d := ollamaAnswer{chat: true, model: "m:latest", stream: true, start: time.Now()}.respond(c, resp, []byte(stream))
	if d.broken || d.tokens != 3 {
		t.Errorf("delivery %+v, want 3 tokens, not broken", d)
	}
	lines := strings.Split(strings.TrimSpace(rec.Body.String()), "\n")
	// The counts decode beside the line: ollamaOut only writes them.
	type line struct {
		ollamaOut
		ollamaStats
	}
	var outs []line
	for _, l := range lines {
		var o line
		if err := json.Unmarshal([]byte(l), &o); err != nil || o.Model != "m:latest" || o.Message == nil {
			t.Fatalf("line %q: %v", l, err)
		}
		outs = append(outs, o)
	}
	if len(outs) != 5 || outs[0].Message.Content != "Hel" || outs[1].Message.Thinking != "hmm" || outs[2].Message.Content != "lo" {
		t.Fatalf("lines:\n%s", rec.Body.String())
	}
	calls := outs[3].Message.ToolCalls
	if len(calls) != 1 || calls[0].Function.Name != "weather" || string(calls[0].Function.Arguments) != `{"city":"Oslo"}` {
		t.Errorf("tool calls %+v", calls)
	}
	last := outs[4]
	if !last.Done || last.DoneReason != "length" || last.EvalCount != 3 || last.PromptEvalCount != 42 || last.EvalDuration != 1_700_000 {
		t.Errorf("last line %+v", last)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/x-ndjson" {
		t.Errorf("Content-Type %q", ct)
	}

	// A stream that stops before its end ends in an error line.
	rec = httptest.NewRecorder()
	c, _ = gin.CreateTestContext(rec)
	d = ollamaAnswer{model: "m", stream: true, start: time.Now()}.respond(c, resp, []byte("data: {\"choices\":[{\"text\":\"Once\"}]}\n\n"))
	if !d.broken || !strings.Contains(rec.Body.String(), `{"error":"the model's answer broke off"}`) ||
		!strings.Contains(rec.Body.String(), `"response":"Once"`) {
		t.Errorf("broken stream: %+v\n%s", d, rec.Body.String())
	}
}

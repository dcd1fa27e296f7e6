package server

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
)

// The last line of an Ollama answer, streamed or whole, chat or generate,
// has every member Ollama's documentation lists, zeros included (nothing
// is loaded for an answer: load_duration is 0); the lines before it have
// none of the counts.
func TestOllamaLastLine(t *testing.T) {
	gin.SetMode(gin.ReleaseMode)
	stream := "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n" + chatStreamTail
	whole := `{"choices":[{"finish_reason":"stop","message":{"content":"Hi"}}],"usage":{"completion_tokens":1,"prompt_tokens":0}}`
	counts := []string{"total_duration", "load_duration", "prompt_eval_count", "prompt_eval_duration", "eval_count", "eval_duration"}
	for _, tc := range []struct {
		name         string
		chat, stream bool
		body         string
	}{
		{"chat stream", true, true, stream},
		{"generate stream", false, true, stream},
		{"chat", true, false, whole},
		{"generate", false, false, whole},
	} {
		rec := httptest.NewRecorder()
		c, _ := gin.CreateTestContext(rec)
		resp := &http.Response{StatusCode: 200, Body: http.NoBody}
		ollamaAnswer{chat: tc.chat, model: "m:latest", stream: tc.stream, start: time.Now()}.respond(c, resp, []byte(tc.body))
		lines := strings.Split(strings.TrimSpace(rec.Body.String()), "\n")
		for i, l := range lines {
			var o map[string]any
			if err := json.Unmarshal([]byte(l), &o); err != nil {
				t.Fatalf("%s: line %q: %v", tc.name, l, err)
			}
			want := []string{"model", "created_at", "done"}
			if tc.chat {
				want = append(want, "message")
			} else {
				want = append(want, "response")
			}
			last := i == len(lines)-1
			if last {
				want = append(append(want, "done_reason"), counts...)
			}
			for _, k := range want {
				if _, ok := o[k]; !ok {
					t.Errorf("%s: line %d has no %s: %s", tc.name, i, k, l)
				}
			}
			if _, ok := o["eval_count"]; !last && ok {
				t.Errorf("%s: line %d has counts: %s", tc.name, i, l)
			}
			if o["done"] != last {
				t.Errorf("%s: line %d done=%v: %s", tc.name, i, o["done"], l)
			}
		}
	}
}

package server

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestRewriteRequest(t *testing.T) {
	schema := `{"type":"object","properties":{"a":{"type":"integer"}}}`
	for _, tt := range []struct {
		name, path, body string
		want             any // response_format after the rewrite; nil: the body unchanged
	}{
		{"json_schema", "/v1/responses", `{"model":"m","input":"x","text":{"format":{"type":"json_schema","name":"f","schema":` + schema + `,"strict":true}}}`,
			map[string]any{"type": "json_schema", "json_schema": map[string]any{"name": "f", "strict": true, "schema": map[string]any{"type": "object", "properties": map[string]any{"a": map[string]any{"type": "integer"}}}}}},
		{"json_object", "/v1/responses", `{"input":"x","text":{"format":{"type":"json_object"}}}`, map[string]any{"type": "json_object"}},
		{"text", "/v1/responses", `{"input":"x","text":{"format":{"type":"text"}}}`, nil},
		{"its own response_format", "/v1/responses", `{"input":"x","response_format":{"type":"text"},"text":{"format":{"type":"json_object"}}}`, nil},
		{"no schema", "/v1/responses", `{"input":"x","text":{"format":{"type":"json_schema","name":"f"}}}`, nil},
		{"chat", "/v1/chat/completions", `{"messages":[],"text":{"format":{"type":"json_object"}}}`, nil},
		{"not JSON", "/v1/responses", `{"text":{"format"`, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out := rewriteRequest(tt.path, []byte(tt.body))
			if tt.want == nil {
				if string(out) != tt.body {
					t.Errorf("rewritten to %s, want it unchanged", out)
				}
				return
			}
			var got map[string]any
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got["response_format"], tt.want) {
				t.Errorf("response_format = %v, want %v", got["response_format"], tt.want)
			}
			if got["text"] == nil || got["input"] == nil {
				t.Errorf("the rest of the body went missing: %s", out)
			}
		})
	}
}

package server

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestRewriteRequest(t *testing.T) {
	schema := `{"type":"object","properties":{"a":{"type":"integer"}}}`
	tools := `"tools":[{"name":"a","input_schema":{}}]`
	for _, tt := range []struct {
		name, path, body string
		want             map[string]any // fields after the rewrite (nil: absent); none: the body unchanged
	}{
		{"json_schema", "/v1/responses", `{"model":"m","input":"x","text":{"format":{"type":"json_schema","name":"f","schema":` + schema + `,"strict":true}}}`,
			map[string]any{"response_format": map[string]any{"type": "json_schema", "json_schema": map[string]any{"name": "f", "strict": true,
				"schema": map[string]any{"type": "object", "properties": map[string]any{"a": map[string]any{"type": "integer"}}}}}}},
		{"json_object", "/v1/responses", `{"input":"x","text":{"format":{"type":"json_object"}}}`,
			map[string]any{"response_format": map[string]any{"type": "json_object"}}},
		{"text", "/v1/responses", `{"input":"x","text":{"format":{"type":"text"}}}`, nil},
		{"its own response_format", "/v1/responses", `{"input":"x","response_format":{"type":"text"},"text":{"format":{"type":"json_object"}}}`, nil},
		{"no schema", "/v1/responses", `{"input":"x","text":{"format":{"type":"json_schema","name":"f"}}}`, nil},
		{"a named function", "/v1/responses", `{"input":"x","tools":[{"type":"function","name":"a"},{"type":"function","name":"get_time"}],"tool_choice":{"type":"function","name":"get_time"}}`,
			map[string]any{"tool_choice": "required", "tools": []any{map[string]any{"type": "function", "name": "get_time"}}}},
		{"a named function not offered", "/v1/responses", `{"input":"x","tools":[{"type":"function","name":"a"}],"tool_choice":{"type":"function","name":"b"}}`, nil},
		{"chat, a named function", "/v1/chat/completions", `{"tools":[{"type":"function","function":{"name":"a"}},{"type":"function","function":{"name":"b"}}],"tool_choice":{"type":"function","function":{"name":"b"}}}`,
			map[string]any{"tool_choice": "required", "tools": []any{map[string]any{"type": "function", "function": map[string]any{"name": "b"}}}}},
		{"chat, auto", "/v1/chat/completions", `{"tools":[{"type":"function","function":{"name":"a"}}],"tool_choice":"auto"}`, nil},
		{"anthropic, a named tool", "/v1/messages", `{"tools":[{"name":"a"},{"name":"b"}],"tool_choice":{"type":"tool","name":"a"}}`,
			map[string]any{"tool_choice": map[string]any{"type": "any"}, "tools": []any{map[string]any{"name": "a"}}}},
		{"required", "/v1/responses", `{"input":"x","tool_choice":"required"}`, nil},
		{"chat", "/v1/chat/completions", `{"messages":[],"text":{"format":{"type":"json_object"}}}`, nil},
		{"not JSON", "/v1/responses", `{"text":{"format"`, nil},
		{"anthropic none", "/v1/messages", `{"max_tokens":5,` + tools + `,"tool_choice":{"type":"none"}}`,
			map[string]any{"tools": nil, "tool_choice": nil, "max_tokens": 5.0}},
		{"anthropic any", "/v1/messages", `{"max_tokens":5,` + tools + `,"tool_choice":{"type":"any"}}`, nil},
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
			for k, want := range tt.want {
				if !reflect.DeepEqual(got[k], want) {
					t.Errorf("%s = %v, want %v", k, got[k], want)
				}
			}
		})
	}
}

package server

import (
	"bytes"
	"encoding/json"
)

// rewriteRequest turns what a client asks in its API's words into what
// llama-server reads, where the two differ; any other body goes as it is.
//
// The Responses API asks for structured output with text.format, which
// llama-server's /v1/responses ignores; it reads response_format, as chat
// completions do. So a text.format of json_schema or json_object is also
// sent as response_format, unless the request names one itself.
func rewriteRequest(path string, body []byte) []byte {
	if path != "/v1/responses" || !bytes.Contains(body, []byte(`"format"`)) {
		return body
	}
	var req map[string]json.RawMessage
	if json.Unmarshal(body, &req) != nil || req["response_format"] != nil {
		return body
	}
	var text struct {
		Format *struct {
			Type   string          `json:"type"`
			Name   string          `json:"name"`
			Schema json.RawMessage `json:"schema"`
			Strict *bool           `json:"strict"`
		} `json:"format"`
	}
	if json.Unmarshal(req["text"], &text) != nil || text.Format == nil {
		return body
	}
	var format any
	switch f := text.Format; f.Type {
	case "json_schema":
		schema := map[string]any{"name": f.Name, "schema": f.Schema}
		if f.Strict != nil {
			schema["strict"] = *f.Strict
		}
		if len(f.Schema) == 0 {
			return body // the validator says what is missing
		}
		format = map[string]any{"type": "json_schema", "json_schema": schema}
	case "json_object":
		format = map[string]any{"type": "json_object"}
	default:
		return body
	}
	rf, err := json.Marshal(format)
	if err != nil {
		return body
	}
	req["response_format"] = rf
	out, err := json.Marshal(req)
	if err != nil {
		return body
	}
	return out
}

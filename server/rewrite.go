package server

import (
	"bytes"
	"encoding/json"
)

// rewriteRequest turns what a client asks in its API's words into what
// llama-server reads, where the two differ; any other body goes as it is.
func rewriteRequest(path string, body []byte) []byte {
	var edit func(req map[string]json.RawMessage) bool
	switch {
	case path == "/v1/responses" && (bytes.Contains(body, []byte(`"format"`)) || bytes.Contains(body, []byte(`"tool_choice"`))):
		edit = rewriteResponses
	case path == "/v1/messages" && bytes.Contains(body, []byte(`"tool_choice"`)):
		edit = rewriteMessages
	case path == "/v1/chat/completions" && bytes.Contains(body, []byte(`"tool_choice"`)):
		edit = rewriteChat
	default:
		return body
	}
	var req map[string]json.RawMessage
	if json.Unmarshal(body, &req) != nil || !edit(req) {
		return body
	}
	out, err := json.Marshal(req)
	if err != nil {
		return body
	}
	return out
}

// rewriteResponses edits a Responses request; false when it left it as it
// was.
//
//   - Structured output is asked with text.format, which llama-server's
//     /v1/responses ignores; it reads response_format, as chat completions
//     do. So a text.format of json_schema or json_object is also sent as
//     response_format, unless the request names one itself.
//   - A tool_choice naming a function ({"type":"function","name":…})
//     becomes a required call of the only tool left (see namedTool).
func rewriteResponses(req map[string]json.RawMessage) bool {
	changed := false
	var text struct {
		Format *struct {
			Type   string          `json:"type"`
			Name   string          `json:"name"`
			Schema json.RawMessage `json:"schema"`
			Strict *bool           `json:"strict"`
		} `json:"format"`
	}
	if req["response_format"] == nil && json.Unmarshal(req["text"], &text) == nil && text.Format != nil {
		var format any
		switch f := text.Format; {
		case f.Type == "json_schema" && len(f.Schema) > 0:
			schema := map[string]any{"name": f.Name, "schema": f.Schema}
			if f.Strict != nil {
				schema["strict"] = *f.Strict
			}
			format = map[string]any{"type": "json_schema", "json_schema": schema}
		case f.Type == "json_object":
			format = map[string]any{"type": "json_object"}
		}
		if format != nil {
			req["response_format"], _ = json.Marshal(format)
			changed = true
		}
	}
	var choice struct {
		Type string `json:"type"`
		Name string `json:"name"`
	}
	if json.Unmarshal(req["tool_choice"], &choice) == nil && choice.Type == "function" && choice.Name != "" {
		changed = namedTool(req, choice.Name, `"required"`) || changed
	}
	return changed
}

// rewriteChat edits a chat completion request: a tool_choice naming a
// function becomes a required call of the only tool left (see namedTool).
func rewriteChat(req map[string]json.RawMessage) bool {
	var choice struct {
		Type     string `json:"type"`
		Function struct {
			Name string `json:"name"`
		} `json:"function"`
	}
	if json.Unmarshal(req["tool_choice"], &choice) != nil || choice.Type != "function" || choice.Function.Name == "" {
		return false
	}
	return namedTool(req, choice.Function.Name, `"required"`)
}

// namedTool narrows a request whose tool_choice names one tool to that
// tool, and asks for a call of it with required, llama-server's word for
// "call a tool". llama-server reads no tool_choice that names a tool: it
// would let the model call any of them, or none. A request that names no
// tool it offers goes as it is, for llama-server to refuse.
func namedTool(req map[string]json.RawMessage, name, required string) bool {
	var tools []json.RawMessage
	if json.Unmarshal(req["tools"], &tools) != nil {
		return false
	}
	for _, t := range tools {
		var tool struct {
			Name     string `json:"name"`
			Function struct {
				Name string `json:"name"`
			} `json:"function"`
		}
		if json.Unmarshal(t, &tool) != nil || (tool.Name != name && tool.Function.Name != name) {
			continue
		}
		req["tools"], _ = json.Marshal([]json.RawMessage{t})
		req["tool_choice"] = json.RawMessage(required)
		return true
	}
	return false
}

// rewriteMessages edits an Anthropic Messages request; false when it left
// it as it was.
//
//   - llama-server reads no tool_choice of type "none" and would let the
//     model call a tool, so such a request goes without its tools: blocks
//     of earlier calls and results stay in the conversation.
//   - One of type "tool" becomes a required call ("any") of the only tool
//     left (see namedTool).
func rewriteMessages(req map[string]json.RawMessage) bool {
	var choice struct {
		Type string `json:"type"`
		Name string `json:"name"`
	}
	if json.Unmarshal(req["tool_choice"], &choice) != nil {
		return false
	}
	switch choice.Type {
	case "none":
		delete(req, "tools")
		delete(req, "tool_choice")
		return true
	case "tool":
		return namedTool(req, choice.Name, `{"type":"any"}`)
	}
	return false
}

package server

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
)

// Requests of Ollama's API, translated into llama-server's OpenAI API.

// ollamaMessage is a chat message as Ollama's API writes it.
type ollamaMessage struct {
	Role      string           `json:"role"`
	Content   string           `json:"content"`
	Thinking  string           `json:"thinking,omitempty"`
	Images    []string         `json:"images,omitempty"` // base64
	ToolCalls []ollamaToolCall `json:"tool_calls,omitempty"`
	ToolName  string           `json:"tool_name,omitempty"`
}

type ollamaToolCall struct {
	Function ollamaFunction `json:"function"`
}

type ollamaFunction struct {
	Index     int             `json:"index,omitempty"`
	Name      string          `json:"name"`
	Arguments json.RawMessage `json:"arguments"`
}

// ollamaCommon are the fields chat and generate share.
type ollamaCommon struct {
	Model   string          `json:"model"`
	Stream  *bool           `json:"stream"` // true when absent
	Format  json.RawMessage `json:"format"`
	Options map[string]any  `json:"options"`
	Think   json.RawMessage `json:"think"`
	// KeepAlive is how long the model stays loaded after this request.
	KeepAlive keepAlive `json:"keep_alive"`
}

func (o ollamaCommon) streaming() bool { return o.Stream == nil || *o.Stream }

// openAIParams turns Ollama's options, format and think into the fields
// of an OpenAI request for llama-server.
func (o ollamaCommon) openAIParams(req map[string]any) error {
	for k, v := range o.Options {
		switch k {
		case "temperature", "top_p", "top_k", "min_p", "typical_p", "seed", "stop",
			"presence_penalty", "frequency_penalty", "repeat_penalty", "repeat_last_n",
			"mirostat", "mirostat_tau", "mirostat_eta":
			req[k] = v // llama-server takes these under the same names
		case "num_keep":
			req["n_keep"] = v
		case "num_predict":
			n, ok := v.(float64)
			if !ok {
				b, _ := json.Marshal(v)
				return fmt.Errorf("option num_predict must be a number, not %s", b)
			}
			if n > 0 { // -1: no limit, -2: fill the context
				req["max_tokens"] = int(n)
			}
		}
		// The others (num_ctx, num_gpu, num_thread, …) are the node's to
		// decide: it plans how the model runs.
	}
	switch f := bytes.TrimSpace(o.Format); {
	case len(f) == 0 || string(f) == "null" || string(f) == `""`:
	case string(f) == `"json"`:
		req["response_format"] = map[string]any{"type": "json_object"}
	case f[0] == '{':
		req["response_format"] = map[string]any{"type": "json_schema", "json_schema": map[string]any{"name": "response", "schema": json.RawMessage(f)}}
	default:
		return fmt.Errorf(`format must be "json" or a JSON schema, not %s`, f)
	}
	switch t := string(bytes.TrimSpace(o.Think)); t {
	case "", "null":
	case "false":
		req["chat_template_kwargs"] = map[string]any{"enable_thinking": false}
	default: // true, or a level: thinking apart from the answer
		req["reasoning_format"] = "deepseek"
	}
	return nil
}

// ollamaChat answers /api/chat with a chat completion.
func (s *Server) ollamaChat(c *gin.Context) {
	start := time.Now()
	var req struct {
		ollamaCommon
		Messages []ollamaMessage `json:"messages"`
		Tools    json.RawMessage `json:"tools"`
	}
	if !s.ollamaBody(c, &req, checkOllamaChat) {
		return
	}
	if len(req.Messages) == 0 {
		s.ollamaLoad(c, req.Model, true, req.KeepAlive)
		return
	}
	msgs, err := openAIMessages(req.Messages)
	if err != nil {
		apiError(c, http.StatusBadRequest, "invalid_request_error", err.Error())
		return
	}
	out := map[string]any{"model": s.modelID(req.Model), "messages": msgs, "stream": req.streaming()}
	if t := bytes.TrimSpace(req.Tools); len(t) > 0 && string(t) != "null" {
		out["tools"] = json.RawMessage(t)
	}
	s.ollamaDispatch(c, "/v1/chat/completions", req.ollamaCommon, out, ollamaAnswer{chat: true}, start)
}

// ollamaGenerate answers /api/generate: a prompt in the model's chat
// template, or as it is when raw, or a fill-in-the-middle with suffix.
func (s *Server) ollamaGenerate(c *gin.Context) {
	start := time.Now()
	var req struct {
		ollamaCommon
		Prompt string   `json:"prompt"`
		Suffix string   `json:"suffix"`
		System string   `json:"system"`
		Raw    bool     `json:"raw"`
		Images []string `json:"images"`
	}
	if !s.ollamaBody(c, &req, checkOllamaGenerate) {
		return
	}
	model := s.modelID(req.Model)
	if req.Prompt == "" && req.Suffix == "" && len(req.Images) == 0 {
		s.ollamaLoad(c, req.Model, false, req.KeepAlive)
		return
	}
	out := map[string]any{"model": model, "stream": req.streaming()}
	path := "/v1/chat/completions"
	switch {
	case req.Suffix != "":
		path = "/infill"
		out["input_prefix"], out["input_suffix"], out["prompt"] = req.Prompt, req.Suffix, ""
	case req.Raw:
		path = "/v1/completions"
		out["prompt"] = req.Prompt
	default:
		var msgs []ollamaMessage
		if req.System != "" {
			msgs = append(msgs, ollamaMessage{Role: "system", Content: req.System})
		}
		msgs = append(msgs, ollamaMessage{Role: "user", Content: req.Prompt, Images: req.Images})
		oms, err := openAIMessages(msgs)
		if err != nil {
			apiError(c, http.StatusBadRequest, "invalid_request_error", err.Error())
			return
		}
		out["messages"] = oms
	}
	s.ollamaDispatch(c, path, req.ollamaCommon, out, ollamaAnswer{}, start)
}

// ollamaDispatch completes out with the options of in and sends it to a
// backend; the answer is translated back to Ollama's shape.
func (s *Server) ollamaDispatch(c *gin.Context, path string, in ollamaCommon, out map[string]any, ans ollamaAnswer, start time.Time) {
	if err := in.openAIParams(out); err != nil {
		apiError(c, http.StatusBadRequest, "invalid_request_error", err.Error())
		return
	}
	if in.streaming() && path != "/infill" {
		out["stream_options"] = map[string]any{"include_usage": true}
	}
	body, err := json.Marshal(out)
	if err != nil {
		apiError(c, http.StatusBadRequest, "invalid_request_error", err.Error())
		return
	}
	ans.model, ans.stream, ans.start = in.Model, in.streaming(), start
	if ans.model == "" {
		ans.model, _ = out["model"].(string)
	}
	if !s.keepModel(c, out["model"].(string), in.KeepAlive) {
		return
	}
	s.dispatch(c, upstream{path: path, model: out["model"].(string), body: body, out: ans}, start)
}

// openAIMessages turns Ollama's chat messages into OpenAI's: images become
// content parts, tool calls take ids (a tool's answer names the call it
// answers) and their arguments a JSON string.
func openAIMessages(in []ollamaMessage) ([]map[string]any, error) {
	out := make([]map[string]any, 0, len(in))
	var pending []string // ids of tool calls not answered yet
	next := 0
	for i, m := range in {
		if m.Role == "" {
			return nil, fmt.Errorf("message %d has no role", i)
		}
		om := map[string]any{"role": m.Role, "content": m.Content}
		if len(m.Images) > 0 {
			parts := []any{map[string]any{"type": "text", "text": m.Content}}
			for j, img := range m.Images {
				data, err := base64.StdEncoding.DecodeString(img)
				if err != nil {
					return nil, fmt.Errorf("message %d, image %d: not base64: %v", i, j, err)
				}
				url := "data:" + http.DetectContentType(data) + ";base64," + img
				parts = append(parts, map[string]any{"type": "image_url", "image_url": map[string]any{"url": url}})
			}
			om["content"] = parts
		}
		if len(m.ToolCalls) > 0 {
			calls := make([]any, 0, len(m.ToolCalls))
			pending = pending[:0]
			for _, tc := range m.ToolCalls {
				id := "call_" + strconv.Itoa(next)
				next++
				pending = append(pending, id)
				args := string(tc.Function.Arguments)
				var str string
				if json.Unmarshal(tc.Function.Arguments, &str) == nil {
					args = str // already a JSON string
				} else if args == "" || args == "null" {
					args = "{}"
				}
				calls = append(calls, map[string]any{"id": id, "type": "function",
					"function": map[string]any{"name": tc.Function.Name, "arguments": args}})
			}
			om["tool_calls"] = calls
		}
		if m.Role == "tool" {
			if len(pending) > 0 {
				om["tool_call_id"], pending = pending[0], pending[1:]
			}
			if m.ToolName != "" {
				om["name"] = m.ToolName
			}
		}
		if m.Thinking != "" && m.Role == "assistant" {
			om["reasoning_content"] = m.Thinking
		}
		out = append(out, om)
	}
	return out, nil
}

// ollamaEmbed answers /api/embed ({"input": text or texts} →
// {"embeddings": [...]}) and the older /api/embeddings ({"prompt": text} →
// {"embedding": [...]}) with llama-server's /v1/embeddings.
func (s *Server) ollamaEmbed(c *gin.Context) {
	start := time.Now()
	var req struct {
		Model     string          `json:"model"`
		Input     json.RawMessage `json:"input"`
		Prompt    *string         `json:"prompt"`
		KeepAlive keepAlive       `json:"keep_alive"`
	}
	if !s.ollamaBody(c, &req, nil) {
		return
	}
	legacy := c.Request.URL.Path == "/api/embeddings"
	input := any(req.Input)
	switch {
	case legacy:
		if req.Prompt == nil {
			apiError(c, http.StatusBadRequest, "invalid_request_error", `say what to embed: {"model": "NAME", "prompt": "TEXT"}`)
			return
		}
		input = *req.Prompt
	case len(bytes.TrimSpace(req.Input)) == 0 || string(bytes.TrimSpace(req.Input)) == "null":
		apiError(c, http.StatusBadRequest, "invalid_request_error", `say what to embed: {"model": "NAME", "input": "TEXT" or ["TEXT", …]}`)
		return
	}
	model := s.modelID(req.Model)
	body, err := json.Marshal(map[string]any{"model": model, "input": input, "encoding_format": "float"})
	if err != nil {
		apiError(c, http.StatusBadRequest, "invalid_request_error", err.Error())
		return
	}
	name := req.Model
	if name == "" {
		name = model
	}
	if !s.keepModel(c, model, req.KeepAlive) {
		return
	}
	s.dispatch(c, upstream{path: "/v1/embeddings", model: model, body: body,
		out: ollamaEmbedding{model: name, legacy: legacy, start: start}}, start)
}

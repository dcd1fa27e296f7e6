package server

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
)

// anthropicResponder writes answers of /v1/messages in the shape
// Anthropic documents: the model as the client named it, a message_start
// for every stream, and the members Anthropic's clients read. It turns
// llama-server's errors, which take OpenAI's shape, into Anthropic's, so
// that Anthropic's clients raise the error they document.
type anthropicResponder struct {
	model string
}

func (a anthropicResponder) respond(c *gin.Context, resp *http.Response, first []byte) delivery {
	if resp.StatusCode >= 400 {
		rest, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		body := append(bytes.Clone(first), rest...)
		msg := backendMessage(body)
		if msg == "" {
			msg = http.StatusText(resp.StatusCode)
		}
		c.JSON(resp.StatusCode, anthropicError(resp.StatusCode, msg))
		return delivery{broken: err != nil, err: err}
	}
	return editedAnswer(c, resp, first, func() answerEditor { return &anthropicStream{model: a.model} })
}

// whole mends a message that is not streamed; other answers
// (count_tokens) stay as they are.
func (s *anthropicStream) whole(body []byte) ([]byte, bool) {
	o, ok := parseObject(body)
	if !ok || o.str("type") != "message" {
		return nil, false
	}
	mendMessage(o, s.model)
	b := o.bytes()
	return b, b != nil
}

// anthropicStream mends one streamed message, event by event.
type anthropicStream struct {
	model   string
	started bool // an event went out
}

// edit mends one event. llama-server now and then begins a stream with
// content_block_start; Anthropic's clients then have no message to fill
// and fail ("stream ended without producing a Message"), so a
// message_start goes before it. That one has no token counts (the
// message_delta at the end has the output's).
func (s *anthropicStream) edit(ev sseEvent) ([]sseEvent, bool) {
	o, ok := parseObject(ev.data)
	if !ok {
		return nil, false
	}
	typ := o.str("type")
	var out []sseEvent
	if !s.started && typ != "message_start" && typ != "error" {
		msg := jsonObject{}
		mendMessage(msg, s.model)
		start := jsonObject{}
		start.set("type", "message_start")
		start.set("message", msg)
		out = append(out, sseEvent{name: "message_start", data: start.bytes()})
	}
	s.started = true
	switch typ {
	case "message_start":
		msg := o.object("message")
		if msg == nil {
			msg = jsonObject{}
		}
		mendMessage(msg, s.model)
		o.set("message", msg)
	case "content_block_start":
		if b := o.object("content_block"); b != nil {
			mendBlock(b)
			o.set("content_block", b)
		}
	case "message_delta":
		if d := o.object("delta"); d != nil {
			setNulls(d, "stop_sequence", "container", "stop_details")
			o.set("delta", d)
		}
		u := o.object("usage")
		if u == nil {
			u = jsonObject{}
		}
		u.setDefault("output_tokens", 0)
		// The others are null here: counted once, in message_start.
		setNulls(u, "input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "output_tokens_details", "server_tool_use")
		o.set("usage", u)
	}
	name := ev.name
	if name == "" {
		name = typ
	}
	return append(out, sseEvent{name: name, data: o.bytes()}), true
}

// mendMessage completes a message, whole or as message_start carries it.
func mendMessage(msg jsonObject, model string) {
	id := msg.str("id")
	switch {
	case id == "":
		msg.set("id", newID("msg_"))
	case !strings.HasPrefix(id, "msg_"): // llama-server's are chat completions'
		msg.set("id", "msg_"+strings.TrimPrefix(id, "chatcmpl-"))
	}
	msg.setDefault("type", "message")
	msg.setDefault("role", "assistant")
	if model != "" {
		msg.set("model", model) // as the client named it, not llama-server's alias
	}
	msg.setRawDefault("content", json.RawMessage(`[]`))
	if content, ok := mendEach(msg["content"], mendBlock); ok {
		msg["content"] = content
	}
	setNulls(msg, "stop_reason", "stop_sequence", "stop_details", "container", "diagnostics")
	u := msg.object("usage")
	if u == nil {
		u = jsonObject{}
	}
	for _, k := range []string{"input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"} {
		u.setDefault(k, 0)
	}
	u.setDefault("cache_creation", map[string]int{"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0})
	u.setDefault("service_tier", "standard")
	setNulls(u, "output_tokens_details", "server_tool_use", "inference_geo", "speed")
	msg.set("usage", u)
}

// mendBlock completes a content block as Anthropic writes one: text has
// its citations (none), and a tool call its caller and its input, as an
// object, from the start.
func mendBlock(b jsonObject) {
	switch b.str("type") {
	case "text":
		setNulls(b, "citations")
	case "tool_use":
		b.setRawDefault("input", json.RawMessage(`{}`))
		b.setDefault("caller", map[string]string{"type": "direct"})
	}
}

// setNulls sets each of keys that o lacks to null: Anthropic's answers
// carry every field of their type, null where it does not apply.
func setNulls(o jsonObject, keys ...string) {
	for _, k := range keys {
		o.setRawDefault(k, json.RawMessage(`null`))
	}
}

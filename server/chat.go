package server

import (
	"encoding/json"
	"net/http"

	"github.com/gin-gonic/gin"
)

// chatResponder writes answers of /v1/chat/completions in the shape OpenAI
// documents: the model as the client named it, and every member of a
// choice that OpenAI's clients type as always there (refusal, logprobs),
// null where it does not apply.
type chatResponder struct {
	model string
}

func (r chatResponder) respond(c *gin.Context, resp *http.Response, first []byte) delivery {
	return editedAnswer(c, resp, first, func() answerEditor { return r })
}

// whole mends a chat completion that is not streamed.
func (r chatResponder) whole(body []byte) ([]byte, bool) {
	o, ok := parseObject(body)
	if !ok || o.str("object") != "chat.completion" {
		return nil, false
	}
	r.name(o)
	if choices, ok := mendEach(o["choices"], mendChoice); ok {
		o["choices"] = choices
	}
	b := o.bytes()
	return b, b != nil
}

// edit mends one event of a streamed chat completion.
func (r chatResponder) edit(ev sseEvent) ([]sseEvent, bool) {
	o, ok := parseObject(ev.data)
	if !ok || o.str("object") != "chat.completion.chunk" {
		return nil, false
	}
	r.name(o)
	ev.data = o.bytes()
	return []sseEvent{ev}, ev.data != nil
}

// name sets the model the answer names to the client's.
func (r chatResponder) name(o jsonObject) {
	if r.model != "" {
		o.set("model", r.model)
	}
}

// mendChoice completes a choice of a whole chat completion.
func mendChoice(ch jsonObject) {
	ch.setRawDefault("logprobs", json.RawMessage(`null`))
	if m := ch.object("message"); m != nil {
		m.setRawDefault("refusal", json.RawMessage(`null`))
		m.setRawDefault("content", json.RawMessage(`null`))
		ch.set("message", m)
	}
}

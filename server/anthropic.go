package server

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
)

// anthropicResponder passes answers to /v1/messages through as they are,
// and turns llama-server's errors, which take OpenAI's shape, into
// Anthropic's, so that Anthropic's clients raise the error they document.
type anthropicResponder struct {
	model string
}

func (a anthropicResponder) respond(c *gin.Context, resp *http.Response, first []byte) delivery {
	if resp.StatusCode < 400 {
		return passthrough{}.respond(c, resp, withMessageStart(first, resp.Header.Get("Content-Type"), a.model))
	}
	rest, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	body := append(bytes.Clone(first), rest...)
	msg := backendMessage(body)
	if msg == "" {
		msg = http.StatusText(resp.StatusCode)
	}
	c.JSON(resp.StatusCode, anthropicError(resp.StatusCode, msg))
	return delivery{broken: err != nil, err: err}
}

// withMessageStart puts a message_start event before a stream that lacks
// one. llama-server 0.7.0 now and then begins an Anthropic stream with
// content_block_start; Anthropic's clients then have no message to fill
// and fail ("stream ended without producing a Message"). The event it
// adds has no token counts (the message_delta at the end has the output's).
func withMessageStart(first []byte, contentType, model string) []byte {
	if !strings.HasPrefix(contentType, "text/event-stream") {
		return first
	}
	lead := bytes.TrimLeft(first, " \r\n")
	start := []byte("event: message_start")
	if bytes.HasPrefix(lead, start) || bytes.HasPrefix(start, lead) {
		return first // it has one, or too little arrived to tell
	}
	id := make([]byte, 12)
	rand.Read(id)
	msg, _ := json.Marshal(map[string]any{"type": "message_start", "message": map[string]any{
		"id": "msg_" + hex.EncodeToString(id), "type": "message", "role": "assistant", "content": []any{},
		"model": model, "stop_reason": nil, "stop_sequence": nil,
		"usage": map[string]int{"input_tokens": 0, "output_tokens": 0},
	}})
	return append([]byte("event: message_start\ndata: "+string(msg)+"\n\n"), first...)
}

package server

import (
	"bytes"
	"io"
	"net/http"

	"github.com/gin-gonic/gin"
)

// anthropicResponder passes answers to /v1/messages through as they are,
// and turns llama-server's errors, which take OpenAI's shape, into
// Anthropic's, so that Anthropic's clients raise the error they document.
type anthropicResponder struct{}

func (anthropicResponder) respond(c *gin.Context, resp *http.Response, first []byte) delivery {
	if resp.StatusCode < 400 {
		return passthrough{}.respond(c, resp, first)
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

package server

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
)

// dialect is the API a client speaks. Its errors, the refusals of the
// access checks included, take that API's shape, so that its official
// client raises the error it documents.
type dialect int

const (
	dialectOpenAI    dialect = iota // {"error": {"message", "type", "code"}}
	dialectAnthropic                // {"type": "error", "error": {"type", "message"}}
	dialectOllama                   // {"error": "message"}
)

// listenerKey holds the request's listener in the gin context.
const listenerKey = "potluck.listener"

// listenerOf is the listener the request came in on.
func listenerOf(c *gin.Context) listener {
	if v, ok := c.Get(listenerKey); ok {
		if l, ok := v.(listener); ok {
			return l
		}
	}
	return listener{}
}

// dialectOf is the API the request speaks: its listener's, or Anthropic's
// for /v1/messages.
func dialectOf(c *gin.Context) dialect {
	if l := listenerOf(c); l.dialect != dialectOpenAI {
		return l.dialect
	}
	if isAnthropicPath(c.Request.URL.Path) {
		return dialectAnthropic
	}
	return dialectOpenAI
}

func isAnthropicPath(p string) bool {
	return p == "/v1/messages" || strings.HasPrefix(p, "/v1/messages/")
}

// apiError answers an error in the shape of the client's API. typ is the
// OpenAI error type; the other APIs derive theirs from the status.
func apiError(c *gin.Context, status int, typ, msg string) {
	switch dialectOf(c) {
	case dialectAnthropic:
		c.JSON(status, anthropicError(status, msg))
	case dialectOllama:
		c.JSON(status, gin.H{"error": msg})
	default:
		openAIError(c, status, typ, msg)
	}
}

func openAIError(c *gin.Context, status int, typ, msg string) {
	c.JSON(status, gin.H{"error": gin.H{"message": msg, "type": typ, "code": status}})
}

// anthropicError is an error as Anthropic's Messages API writes it.
func anthropicError(status int, msg string) gin.H {
	return gin.H{"type": "error", "error": gin.H{"type": anthropicType(status), "message": msg}}
}

// anthropicType is the error type Anthropic's API gives a status.
func anthropicType(status int) string {
	switch status {
	case http.StatusBadRequest, http.StatusUnprocessableEntity, http.StatusUnsupportedMediaType:
		return "invalid_request_error"
	case http.StatusUnauthorized:
		return "authentication_error"
	case http.StatusForbidden:
		return "permission_error"
	case http.StatusNotFound:
		return "not_found_error"
	case http.StatusRequestEntityTooLarge:
		return "request_too_large"
	case http.StatusTooManyRequests:
		return "rate_limit_error"
	case http.StatusServiceUnavailable, 529:
		return "overloaded_error"
	}
	if status >= 400 && status < 500 {
		return "invalid_request_error"
	}
	return "api_error"
}

// brokeEvent is the last event of a stream whose backend broke off: an
// error in the shape of the client's API, which its SDK raises. Nothing
// where the answer is not a stream of events.
func brokeEvent(c *gin.Context, err error) []byte {
	if !strings.HasPrefix(c.Writer.Header().Get("Content-Type"), "text/event-stream") {
		return nil
	}
	msg := "the model's answer broke off: " + err.Error()
	var event string
	var body any
	switch {
	case dialectOf(c) == dialectAnthropic:
		event, body = "error", anthropicError(http.StatusBadGateway, msg)
	case strings.HasPrefix(c.Request.URL.Path, "/v1/responses"):
		event, body = "error", gin.H{"type": "error", "code": "server_error", "message": msg, "param": nil}
	default:
		body = gin.H{"error": gin.H{"message": msg, "type": "server_error", "code": http.StatusBadGateway}}
	}
	data, _ := json.Marshal(body)
	out := "data: " + string(data) + "\n\n"
	if event != "" {
		out = "event: " + event + "\n" + out
	}
	return []byte(out)
}

// WriteError writes an error in OpenAI's shape where no gin context is at
// hand: the answers of a node's model proxy, which peers' APIs relay. code
// is the error's code; nil gives the status, as the API's own errors do.
func WriteError(w http.ResponseWriter, status int, typ string, code any, msg string) {
	if code == nil {
		code = status
	}
	b, _ := json.Marshal(gin.H{"error": gin.H{"message": msg, "type": typ, "code": code}})
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	w.Write(b)
}

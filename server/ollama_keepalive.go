package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
)

// keepAlive is Ollama's keep_alive: how long the model stays loaded after
// the request. A number is seconds, a string a duration ("5m", "1h30m")
// or a number of seconds; negative keeps it until it is unloaded, and 0
// unloads it once the request is answered. Absent: as it was.
type keepAlive struct{ d *time.Duration }

func (k *keepAlive) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if string(b) == "null" {
		return nil
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	var d time.Duration
	switch x := v.(type) {
	case float64:
		d = time.Duration(x * float64(time.Second))
	case string:
		x = strings.TrimSpace(x)
		if f, err := strconv.ParseFloat(x, 64); err == nil {
			d = time.Duration(f * float64(time.Second))
		} else if d, err = time.ParseDuration(x); err != nil {
			return fmt.Errorf("keep_alive %q is not a duration: say \"5m\", \"1h\", a number of seconds, -1 to keep the model loaded, or 0 to unload it", x)
		}
	default:
		return fmt.Errorf("keep_alive must be a duration such as \"5m\" or a number of seconds, not %s", b)
	}
	if d < 0 {
		d = -1
	}
	k.d = &d
	return nil
}

// keepModel applies a request's keep_alive (none: the node's default) to
// the model it names, loading it where it is not, as Ollama does for each
// request; false when it answered an error.
func (s *Server) keepModel(c *gin.Context, model string, k keepAlive) bool {
	l, ok := s.router.(Loader)
	if !ok {
		return true
	}
	if err := l.KeepAlive(model, k.d); err != nil {
		s.routeError(c, err)
		return false
	}
	return true
}

// ollamaLoad answers a chat with no messages or a generate with no
// prompt, Ollama's way to load a model, or with keep_alive 0 to unload
// it: it loads the model and says so once it is ready, or says why not.
func (s *Server) ollamaLoad(c *gin.Context, name string, chat bool, k keepAlive) {
	model := s.modelID(name)
	reason := "load"
	if l, ok := s.router.(Loader); ok && k.d != nil && *k.d == 0 {
		l.Unload(model)
		reason = "unload"
	} else {
		if !s.keepModel(c, model, k) {
			return
		}
		if _, err := s.backends(c.Request.Context(), model); err != nil {
			s.routeError(c, err)
			return
		}
	}
	o := ollamaAnswer{chat: chat, model: name}.line("", "")
	o.Done, o.DoneReason = true, reason
	c.JSON(http.StatusOK, o)
}

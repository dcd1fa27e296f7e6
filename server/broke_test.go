package server

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
)

// brokenBody gives its text, then fails the way a backend that died
// mid-answer does.
type brokenBody struct{ r io.Reader }

func (b *brokenBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err == io.EOF {
		return n, io.ErrUnexpectedEOF
	}
	return n, err
}
func (b *brokenBody) Close() error { return nil }

// A stream whose backend breaks off ends in an error event of the
// client's API, which its SDK raises, and not in silence that reads as a
// finished answer.
func TestBrokenStreamEndsInAnError(t *testing.T) {
	first := "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Once\"}}]}\n\n"
	for _, tc := range []struct {
		path string
		out  responder
		// the last event: its name and the member of its data that
		// carries the message
		event, member string
	}{
		{"/v1/chat/completions", passthrough{}, "", "error.message"},
		{"/v1/messages", anthropicResponder{model: "m"}, "error", "error.message"},
	} {
		rec := httptest.NewRecorder()
		c, _ := gin.CreateTestContext(rec)
		c.Request = httptest.NewRequest(http.MethodPost, tc.path, nil)
		resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"text/event-stream"}},
			Body: &brokenBody{strings.NewReader("data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\" upon\"}}]}\n\n")}}
		d := tc.out.respond(c, resp, []byte(first))
		if !d.broken || !errors.Is(d.err, io.ErrUnexpectedEOF) {
			t.Errorf("%s: delivery %+v; want broken with the backend's error", tc.path, d)
		}
		events := strings.Split(strings.TrimSpace(rec.Body.String()), "\n\n")
		last := events[len(events)-1]
		if strings.Contains(rec.Body.String(), "[DONE]") || strings.Contains(rec.Body.String(), "message_stop") {
			t.Errorf("%s: the broken answer was made to look finished:\n%s", tc.path, rec.Body.String())
		}
		var name, data string
		for _, l := range strings.Split(last, "\n") {
			if v, ok := strings.CutPrefix(l, "event: "); ok {
				name = v
			}
			if v, ok := strings.CutPrefix(l, "data: "); ok {
				data = v
			}
		}
		var doc map[string]any
		if name != tc.event || json.Unmarshal([]byte(data), &doc) != nil {
			t.Errorf("%s: last event %q; want an %q event with JSON", tc.path, last, tc.event)
			continue
		}
		var v any = doc
		for _, k := range strings.Split(tc.member, ".") {
			m, _ := v.(map[string]any)
			v = m[k]
		}
		if msg, _ := v.(string); !strings.Contains(msg, "broke off") {
			t.Errorf("%s: last event %s; want %s to say the answer broke off", tc.path, data, tc.member)
		}
	}
}

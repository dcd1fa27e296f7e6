package ledger

import (
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The daily share: a member over it is refused until midnight UTC, the
// node itself never, and a node with no limit nobody.
func TestOverLimit(t *testing.T) {
	l, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 6, 21, 30, 0, 0, time.UTC)
	l.now = func() time.Time { return now }
	l.Add(Record{Asker: "alice", TokensIn: 100, TokensOut: 400, Servers: []Share{{"head", 1}}})
	l.Add(Record{Asker: "head", TokensIn: 1, TokensOut: 5000, Servers: []Share{{"head", 1}}})

	if _, over := l.OverLimit("head", "alice", 1000, now); over {
		t.Error("500 tokens of 1000 refused")
	}
	r, over := l.OverLimit("head", "alice", 500, now)
	if !over || r.Reset != time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC) || r.RetryAfter(now) != 9001 {
		t.Fatalf("at the limit: %+v %v", r, over)
	}
	if msg := r.Message("alice", "desktop", now); msg != "alice has used its daily share of desktop's model: 500 of 500 tokens; it resets at 00:00 UTC (in 2h30m0s)" {
		t.Errorf("message %q", msg)
	}
	if _, over := l.OverLimit("head", "head", 10, now); over {
		t.Error("a node limited itself")
	}
	if _, over := l.OverLimit("head", "alice", 0, now); over {
		t.Error("no limit refused")
	}
	var none *Ledger
	if _, over := none.OverLimit("head", "alice", 1, now); over {
		t.Error("a node keeping no accounts refused")
	}
}

func TestByLayersAndCounts(t *testing.T) {
	got := ByLayers([]Part{{"head", 30}, {"worker", 10}, {"idle", 0}}, "head")
	if want := []Share{{"head", 0.75}, {"worker", 0.25}}; !reflect.DeepEqual(got, want) {
		t.Errorf("ByLayers = %v, want %v", got, want)
	}
	if got := ByLayers(nil, "head"); !reflect.DeepEqual(got, []Share{{"head", 1}}) {
		t.Errorf("no plan: %v", got)
	}
	for _, c := range []struct {
		path   string
		status int
		want   bool
	}{{"/v1/chat/completions", 200, true}, {"/completion", 200, true}, {"/v1/messages", 429, false}, {"/health", 200, false}} {
		if got := Counts(c.path, c.status); got != c.want {
			t.Errorf("Counts(%s, %d) = %v", c.path, c.status, got)
		}
	}
}

// The counting writer passes the answer on untouched and reads its usage.
func TestCountingWriter(t *testing.T) {
	rec := httptest.NewRecorder()
	w := &CountingWriter{ResponseWriter: rec}
	body := `{"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":12}}`
	w.Write([]byte(body))
	w.Flush()
	if w.Status != 200 || rec.Body.String() != body || !rec.Flushed {
		t.Errorf("status %d, body %q, flushed %v", w.Status, rec.Body.String(), rec.Flushed)
	}
	if w.Tokens.In() != 7 || w.Tokens.Out() != 12 {
		t.Errorf("counted %d in, %d out", w.Tokens.In(), w.Tokens.Out())
	}
	if !strings.Contains(rec.Body.String(), "usage") {
		t.Error("lost the body")
	}
}

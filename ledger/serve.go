package ledger

import (
	"fmt"
	"net/http"
	"strings"
	"time"
)

// The serving side of the accounts: what a node's model proxy asks before
// it serves a request, and what it records after.

// Counts says whether a request a model served goes into the accounts: an
// answer that succeeded, to an inference API.
func Counts(path string, status int) bool {
	return status/100 == 2 && (strings.HasPrefix(path, "/v1/") || path == "/completion")
}

// Part is one node's part of a model: the layers it holds.
type Part struct {
	Node   string
	Layers int
}

// ByLayers shares a request's tokens among the nodes that hold the model,
// in proportion to their layers; with no layers known, all go to self.
func ByLayers(parts []Part, self string) []Share {
	total := 0
	for _, p := range parts {
		total += p.Layers
	}
	var shares []Share
	for _, p := range parts {
		if p.Layers == 0 || total == 0 {
			continue
		}
		shares = append(shares, Share{Node: p.Node, Fraction: float64(p.Layers) / float64(total)})
	}
	if len(shares) == 0 {
		shares = []Share{{Node: self, Fraction: 1}}
	}
	return shares
}

// Refusal is a member that has used its daily share of a node's model.
type Refusal struct {
	Used  float64   // tokens served to it today
	Limit uint64    // tokens a day it may use
	Reset time.Time // when the day ends, UTC
}

// OverLimit says whether asker, another node, has used its daily share
// (limit tokens, 0: no limit) of what server's model serves. A node never
// limits itself.
func (l *Ledger) OverLimit(server, asker string, limit uint64, now time.Time) (Refusal, bool) {
	if l == nil || limit == 0 || asker == "" || asker == server {
		return Refusal{}, false
	}
	used := l.ServedToday(server, asker)
	if used < float64(limit) {
		return Refusal{}, false
	}
	now = now.UTC()
	return Refusal{Used: used, Limit: limit, Reset: now.Truncate(24 * time.Hour).Add(24 * time.Hour)}, true
}

// Message is the refusal as the member reads it: who (its name) used how
// much of whose (the serving node's name) model, and when it resets.
func (r Refusal) Message(who, server string, now time.Time) string {
	return fmt.Sprintf("%s has used its daily share of %s's model: %s of %s tokens; it resets at %s UTC (in %s)",
		who, server, FormatTokens(r.Used), FormatTokens(float64(r.Limit)), r.Reset.Format("15:04"), r.Reset.Sub(now).Round(time.Minute))
}

// RetryAfter is the seconds until the share resets, for a Retry-After.
func (r Refusal) RetryAfter(now time.Time) int { return int(r.Reset.Sub(now).Seconds()) + 1 }

// CountingWriter passes an answer on and counts its tokens.
type CountingWriter struct {
	http.ResponseWriter
	Status int
	Tokens Counter
}

func (w *CountingWriter) WriteHeader(code int) {
	w.Status = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *CountingWriter) Write(p []byte) (int, error) {
	if w.Status == 0 {
		w.Status = http.StatusOK
	}
	w.Tokens.Write(p)
	return w.ResponseWriter.Write(p)
}

func (w *CountingWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the writer beneath.
func (w *CountingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

package app

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/potluck-gpu/potluck/nodestate"
)

// bus delivers events to subscribers without ever blocking the producer: a
// subscriber that falls behind misses events.
type bus struct {
	mu   sync.Mutex
	subs map[chan nodestate.Event]struct{}
}

func (b *bus) publish(e nodestate.Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for ch := range b.subs {
		select {
		case ch <- e:
		default:
		}
	}
}

func (b *bus) subscribe() (<-chan nodestate.Event, func()) {
	ch := make(chan nodestate.Event, 64)
	b.mu.Lock()
	if b.subs == nil {
		b.subs = map[chan nodestate.Event]struct{}{}
	}
	b.subs[ch] = struct{}{}
	b.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			b.mu.Lock()
			delete(b.subs, ch)
			b.mu.Unlock()
			close(ch)
		})
	}
}

// logRing keeps the node's last log lines for the dashboard.
type logRing struct {
	mu    sync.Mutex
	lines []string
	max   int
}

func (r *logRing) add(line string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, line)
	if len(r.lines) > r.max {
		r.lines = r.lines[len(r.lines)-r.max:]
	}
}

func (r *logRing) last(n int) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	n = min(n, len(r.lines))
	return append([]string(nil), r.lines[len(r.lines)-n:]...)
}

// teeHandler passes records on and keeps a one-line copy of each at info
// level and above.
type teeHandler struct {
	next  slog.Handler
	ring  *logRing
	attrs string
}

func (h teeHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelInfo || h.next.Enabled(ctx, l)
}

func (h teeHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelInfo {
		var b strings.Builder
		fmt.Fprintf(&b, "%s %-5s %s%s", r.Time.Format("15:04:05"), r.Level, r.Message, h.attrs)
		r.Attrs(func(a slog.Attr) bool {
			fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
			return true
		})
		h.ring.add(b.String())
	}
	if h.next.Enabled(ctx, r.Level) {
		return h.next.Handle(ctx, r)
	}
	return nil
}

func (h teeHandler) WithAttrs(as []slog.Attr) slog.Handler {
	var b strings.Builder
	b.WriteString(h.attrs)
	for _, a := range as {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
	}
	return teeHandler{next: h.next.WithAttrs(as), ring: h.ring, attrs: b.String()}
}

func (h teeHandler) WithGroup(name string) slog.Handler {
	return teeHandler{next: h.next.WithGroup(name), ring: h.ring, attrs: h.attrs}
}

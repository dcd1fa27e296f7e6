package app

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/nodestate"
)

func TestParseShareMode(t *testing.T) {
	for in, want := range map[string]nodestate.ShareMode{"": nodestate.ShareOff, "off": nodestate.ShareOff, "worker": nodestate.ShareWorker, "shard": nodestate.ShareWorker, "server": nodestate.ShareServer} {
		if got, ok := nodestate.ParseShareMode(in); !ok || got != want {
			t.Errorf("ParseShareMode(%q) = %q, %v", in, got, ok)
		}
	}
	if _, ok := nodestate.ParseShareMode("everything"); ok {
		t.Error("accepted a bad mode")
	}
}

func TestConfigCheck(t *testing.T) {
	model := filepath.Join(t.TempDir(), "m.gguf")
	os.WriteFile(model, []byte("x"), 0o600)
	tests := []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"ok", func(c *Config) { c.Model = model }, ""},
		{"model is a dir", func(c *Config) { c.Model = filepath.Dir(model) }, "directory"},
		{"bad share", func(c *Config) { c.Share = "all-of-it" }, "--share"},
		{"negative ctx", func(c *Config) { c.CtxSize = -1 }, "--ctx-size"},
	}
	for _, tt := range tests {
		c := DefaultConfig()
		tt.edit(&c)
		err := c.Check()
		if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%s: Check = %v, want %q", tt.name, err, tt.want)
		}
	}
}

// A model that is no file, no library name and no reference stops the
// node before it starts, with what to do.
func TestNewNodeRefusesAnUnknownModel(t *testing.T) {
	for _, name := range []string{"/no/such.gguf", "no-such-model"} {
		c := DefaultConfig()
		c.DataDir = t.TempDir()
		c.API = "127.0.0.1:0"
		c.Model = name
		_, err := NewNode(c, nil)
		if err == nil || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), "potluck models") {
			t.Errorf("--model %s: %v", name, err)
		}
	}
}

// A subscriber that never reads does not block publishers.
func TestBusNeverBlocks(t *testing.T) {
	var b bus
	slow, cancelSlow := b.subscribe()
	fast, cancelFast := b.subscribe()
	done := make(chan struct{})
	go func() {
		for i := 0; i < 1000; i++ {
			b.publish(nodestate.Event{Kind: nodestate.EventStatus})
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("publish blocked on a slow subscriber")
	}
	if len(fast) == 0 || len(slow) == 0 {
		t.Error("subscribers got nothing")
	}
	cancelSlow()
	cancelSlow()
	cancelFast()
	if _, ok := <-slow; ok {
		// drained buffered events are fine; the channel must end closed
		for range slow {
		}
	}
}

func TestTeeHandlerKeepsInfoLines(t *testing.T) {
	ring := &logRing{max: 3}
	log := slog.New(teeHandler{next: slog.DiscardHandler, ring: ring}).With("part", "x")
	log.Debug("hidden")
	for i := 0; i < 5; i++ {
		log.Info("line", "i", i)
	}
	got := ring.last(10)
	if len(got) != 3 || !strings.Contains(got[2], "line part=x i=4") {
		t.Errorf("ring = %q", got)
	}
}

// A node with no model and no mesh answers routing with ErrNoModel and
// reports no peers; its status is idle.
func TestIdleNode(t *testing.T) {
	cfg := DefaultConfig()
	cfg.DataDir, cfg.API = t.TempDir(), "127.0.0.1:0"
	n, err := NewNode(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.router.Backends("any"); err == nil {
		t.Error("Backends with no model succeeded")
	}
	if ps := n.Peers(); len(ps) != 0 {
		t.Errorf("peers = %v", ps)
	}
	if _, err := n.InviteToken(); err == nil {
		t.Error("an invite token without a network")
	}
	if err := n.Join(context.Background(), "garbage"); err == nil {
		t.Error("joined with a garbage token")
	} else if _, ok := err.(*nodestate.InvalidTokenError); !ok {
		t.Errorf("garbage token error %T, want *InvalidTokenError", err)
	}
	if st := n.Status(); st.State != nodestate.StateIdle || st.InMesh {
		t.Errorf("status = %+v", st)
	}
}

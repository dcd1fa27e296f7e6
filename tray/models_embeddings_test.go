package tray

import (
	"context"
	"testing"
	"time"

	"fyne.io/fyne/v2/test"

	"github.com/potluck-gpu/potluck/library"
)

// embedCtrl is a fakeCtrl whose node lets a user choose embeddings per
// model.
type embedCtrl struct {
	*fakeCtrl
	chosen chan string
}

func (c embedCtrl) SetEmbeddings(ctx context.Context, name string, on bool) error {
	if on {
		name += " on"
	} else {
		name += " off"
	}
	c.chosen <- name
	return nil
}

var _ EmbeddingsChooser = embedCtrl{}

// The model window shows the embeddings chosen for the picked model, and
// serving it sets them first.
func TestModelsWindowEmbeddings(t *testing.T) {
	h := newHarness(t)
	ctrl := embedCtrl{fakeCtrl: h.ctrl, chosen: make(chan string, 4)}
	h.u.ctrl = ctrl
	h.ctrl.mu.Lock()
	h.ctrl.library.Models = []library.Model{{Name: "chat-model"}, {Name: "embed-me"}}
	h.ctrl.library.Embeddings = []string{"embed-me"}
	h.ctrl.mu.Unlock()
	h.u.showModels("")
	m := h.u.models
	h.waitFor(t, "the library", func() bool { return len(m.models) == 2 })
	if !m.embed.Visible() {
		t.Fatal("the embeddings choice is hidden from a node that has it")
	}
	m.list.Select(1)
	if !m.embed.Checked {
		t.Error("the model chosen for embeddings is not checked")
	}
	m.list.Select(0)
	if m.embed.Checked {
		t.Error("a chat model without embeddings is checked")
	}
	m.embed.SetChecked(true)
	test.Tap(m.serveBtn)
	select {
	case got := <-ctrl.chosen:
		if got != "chat-model on" {
			t.Errorf("SetEmbeddings %q, want chat-model on", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("SetEmbeddings was not called")
	}
	select {
	case got := <-h.ctrl.serves:
		if got != "chat-model" {
			t.Errorf("Serve(%q)", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve was not called")
	}
}

// A node without the choice shows none.
func TestModelsWindowNoEmbeddingsChoice(t *testing.T) {
	h := newHarness(t)
	h.u.showModels("")
	if h.u.models.embed.Visible() {
		t.Error("the embeddings choice shows for a node that has none")
	}
}

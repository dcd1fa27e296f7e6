package tray

import (
	"context"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/library"
)

// draftCtrl is a fakeCtrl whose node lets a user choose the draft model.
type draftCtrl struct {
	*fakeCtrl
	chosen chan string
}

func (c draftCtrl) SetDraft(ctx context.Context, choice string) error {
	c.chosen <- choice
	return nil
}

var _ DraftChooser = draftCtrl{}

// The models window shows the draft chosen among auto, none, the n-gram
// lookup and the library's models, and a pick goes to the node once; a draft the command
// line chose cannot be changed there.
func TestModelsWindowDraft(t *testing.T) {
	h := newHarness(t)
	ctrl := draftCtrl{fakeCtrl: h.ctrl, chosen: make(chan string, 4)}
	h.u.ctrl = ctrl
	h.ctrl.mu.Lock()
	h.ctrl.library.Models = []library.Model{{Name: "big"}, {Name: "small"}}
	h.ctrl.library.Draft = "none"
	h.ctrl.mu.Unlock()
	h.u.showModels("")
	m := h.u.models
	h.waitFor(t, "the library", func() bool { return len(m.models) == 2 })
	d := m.draft
	if !d.row.Visible() || d.sel.Selected != "none" || d.sel.Disabled() {
		t.Fatalf("draft row: visible %v, selected %q, disabled %v", d.row.Visible(), d.sel.Selected, d.sel.Disabled())
	}
	if want := []string{"auto", "none", labelDraftNGram, "big", "small"}; len(d.sel.Options) != len(want) || d.sel.Options[2] != labelDraftNGram || d.sel.Options[3] != "big" {
		t.Errorf("options %v, want %v", d.sel.Options, want)
	}
	select {
	case got := <-ctrl.chosen:
		t.Fatalf("showing the choice set it: %q", got)
	case <-time.After(100 * time.Millisecond):
	}
	d.sel.SetSelected("small")
	select {
	case got := <-ctrl.chosen:
		if got != "small" {
			t.Errorf("SetDraft(%q), want small", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("SetDraft was not called")
	}

	// The n-gram lookup shows by its label and goes to the node by name.
	d.sel.SetSelected(labelDraftNGram)
	select {
	case got := <-ctrl.chosen:
		if got != "ngram" {
			t.Errorf("SetDraft(%q), want ngram", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("SetDraft was not called for the lookup")
	}
	h.ctrl.mu.Lock()
	h.ctrl.library.Draft = "ngram"
	h.ctrl.mu.Unlock()
	m.reload()
	h.waitFor(t, "the lookup chosen", func() bool { return d.sel.Selected == labelDraftNGram })

	h.ctrl.mu.Lock()
	h.ctrl.library.Draft, h.ctrl.library.DraftFixed = "big", true
	h.ctrl.mu.Unlock()
	m.reload()
	h.waitFor(t, "the fixed choice", func() bool { return d.sel.Disabled() })
	if d.sel.Selected != "big" || d.note.Text != labelDraftFixed {
		t.Errorf("fixed draft: selected %q, note %q", d.sel.Selected, d.note.Text)
	}
}

// A node without the choice shows none.
func TestModelsWindowNoDraftChoice(t *testing.T) {
	h := newHarness(t)
	h.u.showModels("")
	if h.u.models.draft.row.Visible() {
		t.Error("the draft choice shows for a node that has none")
	}
}

package tray

import (
	"context"
	"slices"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/widget"

	"github.com/potluck-gpu/potluck/nodestate"
)

// Labels of the draft row; tests find widgets by these.
const (
	labelDraft      = "Draft model (faster splits):"
	labelDraftAuto  = "auto"
	labelDraftNone  = "none"
	labelDraftNGram = "n-gram lookup (no draft model)"
	labelDraftFixed = "chosen with --draft"
)

// draftLabels are the choices the row shows by another name.
var draftLabels = map[string]string{"": labelDraftAuto, "ngram": labelDraftNGram}

// DraftChooser lets a user interface choose the draft model a model
// decodes with (speculative decoding): "auto", "none", "ngram" or a
// model's name.
// *Node implements it.
type DraftChooser interface {
	// SetDraft keeps the choice and restarts the model served with it.
	SetDraft(ctx context.Context, choice string) error
}

// draftRow is the models window's choice of draft model: auto, none, an
// n-gram lookup, or one of the library's models. It is hidden when the
// node has no such choice.
type draftRow struct {
	u      *ui
	sel    *widget.Select
	note   *widget.Label
	row    fyne.CanvasObject
	chosen string // as the node last said; Select changes to it are not the user's
}

func newDraftRow(u *ui) *draftRow {
	d := &draftRow{u: u, note: widget.NewLabel("")}
	d.sel = widget.NewSelect(nil, d.pick)
	d.row = container.NewHBox(widget.NewLabel(labelDraft), d.sel, d.note)
	if _, ok := u.ctrl.(DraftChooser); !ok {
		d.row.Hide()
	}
	return d
}

// show fills the choices from the library. Fyne thread.
func (d *draftRow) show(lib nodestate.LibraryView) {
	opts := []string{labelDraftAuto, labelDraftNone, labelDraftNGram}
	for _, m := range lib.Models {
		if !slices.Contains(opts, m.Name) {
			opts = append(opts, m.Name)
		}
	}
	d.chosen = lib.Draft
	if l, ok := draftLabels[d.chosen]; ok {
		d.chosen = l
	}
	if !slices.Contains(opts, d.chosen) {
		opts = append(opts, d.chosen)
	}
	d.sel.Options = opts
	d.sel.SetSelected(d.chosen)
	if lib.DraftFixed {
		d.sel.Disable()
		d.note.SetText(labelDraftFixed)
	} else {
		d.sel.Enable()
		d.note.SetText("")
	}
}

// pick tells the node the user's choice. Fyne thread.
func (d *draftRow) pick(choice string) {
	ch, ok := d.u.ctrl.(DraftChooser)
	if !ok || choice == d.chosen {
		return
	}
	d.chosen = choice
	for c, l := range draftLabels {
		if l == choice && c != "" {
			choice = c
		}
	}
	d.u.background("Could not change the draft model", func(ctx context.Context) error {
		return ch.SetDraft(ctx, choice)
	})
}

package tray

import (
	"context"
	"errors"
	"fmt"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/widget"

	"github.com/potluck-gpu/potluck/hub"
	"github.com/potluck-gpu/potluck/library"
)

// Labels of the pull box; tests find widgets by these.
const (
	labelCancelPull = "Cancel"
	textCancelling  = "Cancelling…"
	// textCancelled says what a cancelled pull leaves: nothing listed,
	// and a hidden partial file that the next pull of it resumes from
	// (package download and swarm keep one).
	textCancelled = "Cancelled: no model was added. What was downloaded so far is kept, and getting it again resumes from there."
)

// pullBox is the model window's "get a model" part: a reference and Get;
// while a pull runs, its progress, a row per peer it is copied from, and
// Cancel.
type pullBox struct {
	u         *ui
	ref       *widget.Entry
	getBtn    *widget.Button
	cancelBtn *widget.Button
	bar       *widget.ProgressBar
	progress  *widget.Label
	peers     *fyne.Container // a peerRow each, while a copy from peers runs
	peerRows  []peerRow
	// got hears of a model that a pull made available.
	got func(library.Model)

	cancel    context.CancelFunc // the running pull's; nil when none runs
	cancelled bool               // Cancel was pressed for the running pull
}

// peerRow is one peer a model is copied from, and what it sent so far.
type peerRow struct {
	name  string
	label *widget.Label
	bar   *widget.ProgressBar
}

func newPullBox(u *ui, got func(library.Model)) *pullBox {
	b := &pullBox{u: u, got: got}
	b.ref = widget.NewEntry()
	b.ref.SetPlaceHolder("OWNER/REPO:Q4_K_M or OWNER/REPO/FILE.gguf")
	b.ref.OnSubmitted = func(string) { b.get() }
	b.getBtn = widget.NewButton(labelGetBtn, b.get)
	b.cancelBtn = widget.NewButton(labelCancelPull, b.stop)
	b.cancelBtn.Hide()
	b.bar = widget.NewProgressBar()
	b.bar.Hide()
	b.progress = widget.NewLabel("")
	b.progress.Wrapping = fyne.TextWrapWord
	b.peers = container.NewVBox()
	b.peers.Hide()
	return b
}

// content lays the box out.
func (b *pullBox) content() []fyne.CanvasObject {
	return []fyne.CanvasObject{
		widget.NewLabel("Get a model from Hugging Face (GGUF files only):"),
		container.NewBorder(nil, nil, nil, container.NewHBox(b.getBtn, b.cancelBtn), b.ref),
		b.bar,
		b.progress,
		b.peers,
	}
}

// pulling says whether a pull runs. Fyne thread.
func (b *pullBox) pulling() bool { return b.cancel != nil }

// get pulls the reference in the box, with progress. Fyne thread.
func (b *pullBox) get() {
	if b.pulling() {
		return
	}
	ref := b.ref.Text
	if _, err := hub.ParseRef(ref); err != nil {
		b.progress.SetText(err.Error())
		return
	}
	u := b.u
	ctx, cancel := context.WithCancel(u.ctx)
	b.cancel, b.cancelled = cancel, false
	b.getBtn.Disable()
	b.ref.Disable()
	b.cancelBtn.Enable()
	b.cancelBtn.Show()
	b.bar.SetValue(0)
	b.bar.Show()
	b.progress.SetText("Looking for " + ref + "…")
	go func() {
		defer cancel()
		var last time.Time
		model, err := u.ctrl.Pull(ctx, ref, func(p hub.Progress) {
			if p.Total > 0 { // at most five bars a second; every status
				if time.Since(last) < 200*time.Millisecond && p.Completed < p.Total {
					return
				}
				last = time.Now()
			}
			u.do(func() { b.step(p) })
		})
		u.do(func() { b.pulled(model, err) })
	}()
}

// stop cancels the running pull: the node stops downloading, and pulled
// says so once the pull has returned. Fyne thread.
func (b *pullBox) stop() {
	if !b.pulling() || b.cancelled {
		return
	}
	b.cancelled = true
	b.cancel()
	b.cancelBtn.Disable()
	b.progress.SetText(textCancelling)
}

// step shows one step of a pull. Fyne thread.
func (b *pullBox) step(p hub.Progress) {
	if !b.pulling() || b.cancelled {
		return
	}
	if p.Total <= 0 {
		b.progress.SetText(p.Status)
		return
	}
	b.bar.SetValue(float64(p.Completed) / float64(p.Total))
	text := fmt.Sprintf("%s: %s of %s", p.File, formatBytes(uint64(p.Completed)), formatBytes(uint64(p.Total)))
	if len(p.Peers) > 0 {
		text += ", from " + plural(len(p.Peers), "peer", "peers")
	}
	b.progress.SetText(text)
	b.showPeers(p.Peers, p.Total)
}

// showPeers shows a row per peer with what it sent of total; none hides
// the rows. Fyne thread.
func (b *pullBox) showPeers(peers []hub.PeerBytes, total int64) {
	if len(peers) == 0 {
		b.peers.Hide()
		return
	}
	same := len(peers) == len(b.peerRows)
	for i := 0; same && i < len(peers); i++ {
		same = peers[i].Name == b.peerRows[i].name
	}
	if !same {
		b.peerRows = b.peerRows[:0]
		var objs []fyne.CanvasObject
		for _, p := range peers {
			r := peerRow{name: p.Name, label: widget.NewLabel(""), bar: widget.NewProgressBar()}
			b.peerRows = append(b.peerRows, r)
			objs = append(objs, container.NewGridWithColumns(2, r.label, r.bar))
		}
		b.peers.Objects = objs
		b.peers.Refresh()
	}
	for i, p := range peers {
		r := b.peerRows[i]
		r.label.SetText(peerLine(p, total))
		r.bar.SetValue(float64(p.Completed) / float64(total))
	}
	b.peers.Show()
}

// peerLine is one peer's row: what it sent of the file.
func peerLine(p hub.PeerBytes, total int64) string {
	return fmt.Sprintf("%s: %s of %s", p.Name, formatBytes(uint64(p.Completed)), formatBytes(uint64(total)))
}

// pulled ends a pull. Fyne thread.
func (b *pullBox) pulled(model library.Model, err error) {
	cancelled := b.cancelled
	b.cancel, b.cancelled = nil, false
	b.getBtn.Enable()
	b.ref.Enable()
	b.bar.Hide()
	b.cancelBtn.Hide()
	b.peers.Hide()
	b.peerRows, b.peers.Objects = nil, nil
	switch {
	case err == nil: // done before Cancel could stop it
		b.progress.SetText(model.Name + " is here (" + formatBytes(model.Size) + "): pick it above to serve it.")
		b.ref.SetText("")
		b.got(model)
	case cancelled:
		b.progress.SetText(textCancelled)
	case errors.Is(err, context.Canceled): // the app is quitting
	default:
		b.progress.SetText("Could not get it: " + err.Error())
	}
}

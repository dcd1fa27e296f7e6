package tray

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/layout"
	"fyne.io/fyne/v2/widget"

	"github.com/potluck-gpu/potluck/hub"
	"github.com/potluck-gpu/potluck/library"
	"github.com/potluck-gpu/potluck/nodestate"
)

// Labels of the model window; tests find widgets by these.
const (
	labelModels    = "Models"
	labelServeBtn  = "Serve"
	labelStopServe = "Stop serving"
	labelGetBtn    = "Get"
	labelEmbed     = "Serve embeddings too (/v1/embeddings, /api/embed)"
)

// modelsWindow is "Serve a model…" and "Get a model…": the models on this
// machine to pick from, and a box to get one from Hugging Face with a
// progress bar.
type modelsWindow struct {
	u      *ui
	win    fyne.Window
	models []library.Model
	picked int

	list     *widget.List
	serving  *widget.Label
	serveBtn *widget.Button
	stopBtn  *widget.Button

	// embed chooses embeddings for a chat model, as the node keeps them
	// per model (embeddings lists those); hidden when the node has no
	// such choice.
	embed      *widget.Check
	embeddings []string

	ref      *widget.Entry
	getBtn   *widget.Button
	bar      *widget.ProgressBar
	progress *widget.Label
	then     nodestate.ShareMode // share this way once a model is picked; "" none
}

// showModels opens the window; then, if not "", is the share mode to turn
// on once a model is served (Full server needs one).
func (u *ui) showModels(then nodestate.ShareMode) {
	if u.models == nil {
		u.models = newModelsWindow(u)
	}
	u.models.then = then
	u.models.reload()
	u.models.win.Show()
	u.models.win.RequestFocus()
}

func newModelsWindow(u *ui) *modelsWindow {
	m := &modelsWindow{u: u, win: u.app.NewWindow(labelModels), picked: -1}
	m.serving = widget.NewLabel("")
	m.serving.Wrapping = fyne.TextWrapWord
	m.list = widget.NewList(
		func() int { return len(m.models) },
		func() fyne.CanvasObject { return widget.NewLabel("model") },
		func(i widget.ListItemID, o fyne.CanvasObject) { o.(*widget.Label).SetText(modelLine(m.models[i])) },
	)
	m.list.OnSelected = func(i widget.ListItemID) {
		m.picked = i
		m.serveBtn.Enable()
		m.embed.SetChecked(slices.Contains(m.embeddings, m.models[i].Name))
	}
	m.embed = widget.NewCheck(labelEmbed, nil)
	if _, ok := u.ctrl.(EmbeddingsChooser); !ok {
		m.embed.Hide()
	}
	m.serveBtn = &widget.Button{Text: labelServeBtn, Importance: widget.HighImportance, OnTapped: m.serve}
	m.serveBtn.Disable()
	m.stopBtn = widget.NewButton(labelStopServe, func() { m.serveName("") })

	m.ref = widget.NewEntry()
	m.ref.SetPlaceHolder("OWNER/REPO:Q4_K_M or OWNER/REPO/FILE.gguf")
	m.ref.OnSubmitted = func(string) { m.get() }
	m.getBtn = widget.NewButton(labelGetBtn, m.get)
	m.bar = widget.NewProgressBar()
	m.bar.Hide()
	m.progress = widget.NewLabel("")
	m.progress.Wrapping = fyne.TextWrapWord

	getIntro := widget.NewLabel("Get a model from Hugging Face (GGUF files only):")
	m.win.SetContent(container.NewBorder(
		m.serving,
		container.NewVBox(
			container.NewHBox(m.embed, layout.NewSpacer(), m.stopBtn, m.serveBtn),
			widget.NewSeparator(),
			getIntro,
			container.NewBorder(nil, nil, nil, m.getBtn, m.ref),
			m.bar,
			m.progress,
		),
		nil, nil,
		m.list,
	))
	m.win.SetOnClosed(func() { u.models = nil })
	m.win.Resize(fyne.NewSize(620, 460))
	return m
}

// modelLine is one model in the list.
func modelLine(m library.Model) string {
	s := fmt.Sprintf("%s  ·  %s", m.Name, formatBytes(m.Size))
	if m.Quant != "" {
		s += "  ·  " + m.Quant
	}
	switch {
	case strings.HasPrefix(m.Source, "peers: "):
		s += "  ·  on " + strings.TrimPrefix(m.Source, "peers: ")
	case m.Source != library.SourcePotluck:
		s += "  ·  from " + m.Source
	}
	return s
}

// reload reads the library off the Fyne thread and shows it.
func (m *modelsWindow) reload() {
	u := m.u
	go func() {
		lib := u.ctrl.Library()
		u.do(func() { m.show(lib) })
	}()
}

// show fills the window from the library. Fyne thread.
func (m *modelsWindow) show(lib nodestate.LibraryView) {
	m.models = slices.Clone(lib.Models)
	m.embeddings = lib.Embeddings
	for _, p := range lib.Peers { // serving one copies it from them first
		m.models = append(m.models, library.Model{Name: p.Name, Size: p.Size, Source: "peers: " + strings.Join(p.On, ", ")})
	}
	m.picked = -1
	m.embed.SetChecked(false)
	m.list.UnselectAll()
	m.list.Refresh()
	m.serveBtn.Disable()
	switch {
	case len(m.models) == 0:
		m.serving.SetText("No models on this computer yet: get one below. Potluck also finds the models of Ollama, LM Studio and Hugging Face's cache.")
	case lib.Serving != "":
		m.serving.SetText("Serving " + lib.Serving + ". Pick another to serve it instead:")
	default:
		m.serving.SetText("Pick a model to serve. With friends' machines in the network it is split over them when it does not fit here.")
	}
	if lib.Serving == "" {
		m.stopBtn.Disable()
	} else {
		m.stopBtn.Enable()
	}
	if m.then == nodestate.ShareServer {
		m.serving.SetText(m.serving.Text + "\nSharing as a full server starts once a model is picked.")
	}
}

func (m *modelsWindow) serve() {
	if m.picked < 0 || m.picked >= len(m.models) {
		return
	}
	m.serveName(m.models[m.picked].Name)
}

// serveName serves name ("" stops serving), with embeddings as checked,
// then shares if asked to.
func (m *modelsWindow) serveName(name string) {
	u, then := m.u, m.then
	m.then = ""
	mem := u.status.ShareMemory
	embed := m.embed.Checked
	u.background("Could not serve the model", func(ctx context.Context) error {
		if ch, ok := u.ctrl.(EmbeddingsChooser); ok && name != "" {
			if err := ch.SetEmbeddings(ctx, name, embed); err != nil {
				return err
			}
		}
		if err := u.ctrl.Serve(ctx, name); err != nil {
			return err
		}
		if then != "" && name != "" {
			return u.ctrl.Share(ctx, then, mem)
		}
		return nil
	})
	if name != "" {
		m.win.Close()
	} else {
		m.reload()
	}
}

// get pulls the reference in the box, with progress. Fyne thread.
func (m *modelsWindow) get() {
	ref := m.ref.Text
	if _, err := hub.ParseRef(ref); err != nil {
		m.progress.SetText(err.Error())
		return
	}
	m.getBtn.Disable()
	m.ref.Disable()
	m.bar.SetValue(0)
	m.bar.Show()
	m.progress.SetText("Looking for " + ref + "…")
	u := m.u
	go func() {
		var last time.Time
		model, err := u.ctrl.Pull(u.ctx, ref, func(p hub.Progress) {
			if p.Total > 0 && time.Since(last) < 200*time.Millisecond && p.Completed < p.Total {
				return
			}
			last = time.Now()
			u.do(func() { m.step(p) })
		})
		u.do(func() { m.pulled(model, err) })
	}()
}

// step shows one step of a pull. Fyne thread.
func (m *modelsWindow) step(p hub.Progress) {
	if p.Total > 0 {
		m.bar.SetValue(float64(p.Completed) / float64(p.Total))
		m.progress.SetText(fmt.Sprintf("%s: %s of %s", p.File, formatBytes(uint64(p.Completed)), formatBytes(uint64(p.Total))))
		return
	}
	m.progress.SetText(p.Status)
}

// pulled ends a pull. Fyne thread.
func (m *modelsWindow) pulled(model library.Model, err error) {
	m.getBtn.Enable()
	m.ref.Enable()
	m.bar.Hide()
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return
		}
		m.progress.SetText("Could not get it: " + err.Error())
		return
	}
	m.progress.SetText(model.Name + " is here (" + formatBytes(model.Size) + "): pick it above to serve it.")
	m.ref.SetText("")
	m.reload()
}

package tray

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/layout"
	"fyne.io/fyne/v2/widget"

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
// progress bar, a row per peer it is copied from, and Cancel.
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

	draft *draftRow

	*pullBox
	then nodestate.ShareMode // share this way once a model is picked; "" none
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

	m.pullBox = newPullBox(u, func(library.Model) { m.reload() })
	m.draft = newDraftRow(u)

	m.win.SetContent(container.NewBorder(
		m.serving,
		container.NewVBox(append([]fyne.CanvasObject{
			container.NewHBox(m.embed, layout.NewSpacer(), m.stopBtn, m.serveBtn),
			m.draft.row,
			widget.NewSeparator(),
		}, m.pullBox.content()...)...),
		nil, nil,
		m.list,
	))
	m.win.SetCloseIntercept(m.close)
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
	m.draft.show(lib)
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
		m.close()
	} else {
		m.reload()
	}
}

// close closes the window, or hides it while a pull runs: the pull goes
// on, and opening the window again shows it with its Cancel. Fyne thread.
func (m *modelsWindow) close() {
	if m.pulling() {
		m.win.Hide()
		return
	}
	m.win.Close()
}

package tray

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"unicode/utf8"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/layout"
	"fyne.io/fyne/v2/widget"

	"github.com/potluck-gpu/potluck/nodestate"
)

// maxTokenLen bounds a pasted token; anything longer is not one.
const maxTokenLen = 64 << 10

// Messages for a token that is not one, in the words of the person pasting.
var (
	errTokenEmpty = errors.New("Paste the invite token a friend sent you: they find it in their Potluck menu under “Copy invite token”.")
	errTokenBad   = errors.New("This is not an invite token. Ask your friend to use “Copy invite token” again and send you all of it.")
)

// checkToken tells a token from something else before the node sees it;
// the node has the last word. It returns the token without the line breaks
// and spaces that chat and mail apps add to long lines.
func checkToken(s string) (string, error) {
	if len(s) > maxTokenLen {
		return "", errTokenBad
	}
	tok := strings.Join(strings.Fields(s), "")
	if tok == "" {
		return "", errTokenEmpty
	}
	var raw []byte
	var err error
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if raw, err = enc.DecodeString(tok); err == nil {
			break
		}
	}
	// A token is base64 of a YAML document.
	if err != nil || !utf8.Valid(raw) || !strings.Contains(string(raw), ":") {
		return "", errTokenBad
	}
	return tok, nil
}

// joinWindow is "Join a network…": a token box, Paste, Join, and then who
// is in the mesh.
type joinWindow struct {
	u       *ui
	win     fyne.Window
	token   *widget.Entry
	paste   *widget.Button
	joinBtn *widget.Button
	problem *widget.Label
	busy    *fyne.Container
	result  *widget.Label
	closing *widget.Button
}

func (u *ui) showJoin() {
	if u.join == nil {
		u.join = newJoinWindow(u)
	}
	u.join.win.Show()
	u.join.win.RequestFocus()
}

func newJoinWindow(u *ui) *joinWindow {
	j := &joinWindow{u: u, win: u.app.NewWindow("Join a network")}
	intro := widget.NewLabel("Paste the invite token a friend sent you. This computer leaves any network it is in and joins theirs.")
	intro.Wrapping = fyne.TextWrapWord
	j.token = widget.NewMultiLineEntry()
	j.token.Wrapping = fyne.TextWrapBreak
	j.token.SetPlaceHolder("invite token")
	j.token.SetMinRowsVisible(4)
	j.token.OnChanged = func(string) { j.problem.Hide() }
	j.paste = widget.NewButton("Paste", func() {
		j.token.SetText(strings.TrimSpace(u.app.Clipboard().Content()))
	})
	j.joinBtn = &widget.Button{Text: "Join", Importance: widget.HighImportance, OnTapped: j.submit}
	j.problem = widget.NewLabel("")
	j.problem.Wrapping = fyne.TextWrapWord
	j.problem.Importance = widget.DangerImportance
	j.problem.Hide()
	j.busy = container.NewVBox(widget.NewLabel("Joining… finding the other machines can take a minute."), widget.NewProgressBarInfinite())
	j.busy.Hide()
	j.result = widget.NewLabel("")
	j.result.Wrapping = fyne.TextWrapWord
	j.result.Hide()
	j.closing = widget.NewButton("Close", j.win.Close)
	j.closing.Hide()
	j.win.SetContent(container.NewVBox(
		intro,
		j.token,
		j.problem,
		j.busy,
		j.result,
		container.NewHBox(layout.NewSpacer(), j.paste, j.joinBtn, j.closing),
	))
	j.win.SetOnClosed(func() { u.join = nil })
	j.win.Resize(fyne.NewSize(520, 300))
	return j
}

// submit checks the token and joins in the background. Fyne thread.
func (j *joinWindow) submit() {
	tok, err := checkToken(j.token.Text)
	if err != nil {
		j.showProblem(err.Error())
		return
	}
	j.problem.Hide()
	j.result.Hide()
	j.busy.Show()
	j.token.Disable()
	j.paste.Disable()
	j.joinBtn.Disable()
	u := j.u
	go func() {
		err := u.ctrl.Join(u.ctx, tok)
		var peers []nodestate.Peer
		if err == nil {
			peers = u.ctrl.Peers()
		}
		u.do(func() { j.done(err, peers) })
		u.requestRefresh()
	}()
}

// done shows how joining went. Fyne thread.
func (j *joinWindow) done(err error, peers []nodestate.Peer) {
	j.busy.Hide()
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return
		}
		j.token.Enable()
		j.paste.Enable()
		j.joinBtn.Enable()
		j.showProblem(joinProblem(err))
		return
	}
	j.result.SetText(joinedText(peers))
	j.result.Show()
	j.paste.Hide()
	j.joinBtn.Hide()
	j.closing.Show()
}

func (j *joinWindow) showProblem(msg string) {
	j.problem.SetText(msg)
	j.problem.Show()
}

// joinProblem words a failed join. The node's errors are written for people.
func joinProblem(err error) string {
	msg := err.Error()
	if errors.Is(err, context.DeadlineExceeded) {
		msg = "no other machine answered in time. Check that your friend's Potluck is running and try again."
	}
	return "Could not join: " + msg
}

// joinedText says who is in the mesh after joining.
func joinedText(peers []nodestate.Peer) string {
	if len(peers) == 0 {
		return "You joined the network. No other machine is online yet; they show up here and in the dashboard as they connect."
	}
	var b strings.Builder
	b.WriteString("You joined the network. In it with you:")
	for _, p := range peers {
		b.WriteString("\n• ")
		b.WriteString(peerName(p))
		if p.Mode != "" && p.Mode != nodestate.ShareOff {
			b.WriteString(" — " + modeLabel(p.Mode) + ", " + formatBytes(p.MemoryOffered))
		}
		if !p.Online {
			b.WriteString(" (offline)")
		}
	}
	return b.String()
}

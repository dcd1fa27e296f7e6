package tray

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/widget"

	"github.com/potluck-gpu/potluck/hub"
	"github.com/potluck-gpu/potluck/library"
	"github.com/potluck-gpu/potluck/nodestate"
)

// fakeCtrl is an Controller that records calls and replays events.
type fakeCtrl struct {
	mu      sync.Mutex
	status  nodestate.Status
	peers   []nodestate.Peer
	recent  []nodestate.Request
	logs    []string
	token   string
	joinErr error
	members nodestate.MembersView
	library nodestate.LibraryView
	pullErr error
	pulls   chan string
	// pullSteps, when set, is the progress Pull reports; with pullHold
	// it then waits for its context to end and sends why on pullEnded.
	pullSteps []hub.Progress
	pullHold  bool
	pullEnded chan error
	serves    chan string

	events chan nodestate.Event
	joins  chan string
	shares chan shareCall
	usage  nodestate.Usage
}

type shareCall struct {
	Mode   nodestate.ShareMode
	Memory uint64
}

var _ Controller = (*fakeCtrl)(nil)

func newFakeCtrl() *fakeCtrl {
	return &fakeCtrl{
		status:    nodestate.Status{Name: "kitchen", Version: "0.1.0", State: nodestate.StateIdle, Share: nodestate.ShareOff, API: "http://127.0.0.1:8080/v1"},
		events:    make(chan nodestate.Event, 16),
		joins:     make(chan string, 4),
		shares:    make(chan shareCall, 4),
		pulls:     make(chan string, 4),
		pullEnded: make(chan error, 4),
		serves:    make(chan string, 4),
	}
}

func (f *fakeCtrl) Status() nodestate.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.status
}

func (f *fakeCtrl) Peers() []nodestate.Peer {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.peers)
}

func (f *fakeCtrl) SetShareAs(ctx context.Context, mode nodestate.ShareMode) error {
	f.mu.Lock()
	shared, memory := f.status.Share != nodestate.ShareOff && f.status.Share != "", f.status.ShareMemory
	if !shared {
		f.status.ShareAs = mode
	}
	f.mu.Unlock()
	if shared {
		return f.Share(ctx, mode, memory)
	}
	return nil
}

func (f *fakeCtrl) Join(ctx context.Context, token string) error {
	f.joins <- token
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.joinErr != nil {
		return f.joinErr
	}
	f.status.InMesh, f.token = true, token
	return nil
}

func (f *fakeCtrl) Leave(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.status.InMesh, f.status.Share, f.status.State = false, nodestate.ShareOff, nodestate.StateIdle
	return nil
}

func (f *fakeCtrl) Share(ctx context.Context, mode nodestate.ShareMode, memory uint64) error {
	f.mu.Lock()
	f.status.Share, f.status.ShareMemory = mode, memory
	if mode != nodestate.ShareOff {
		f.status.ShareAs = mode
	}
	f.status.State = nodestate.StateIdle
	if mode != nodestate.ShareOff {
		f.status.State, f.status.InMesh, f.status.MemoryOffered = nodestate.StateSharing, true, 12<<30
		if f.token == "" {
			f.token = "fresh-token"
		}
	}
	f.mu.Unlock()
	f.shares <- shareCall{mode, memory}
	return nil
}

func (f *fakeCtrl) InviteToken() (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.token == "" {
		return "", errors.New("not in a mesh")
	}
	return f.token, nil
}

func (f *fakeCtrl) Subscribe() (<-chan nodestate.Event, func()) { return f.events, func() {} }

func (f *fakeCtrl) SetDevices(ctx context.Context, devices []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.status.DeviceChoice = slices.Clone(devices)
	return nil
}

func (f *fakeCtrl) SetLendTo(ctx context.Context, who []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.status.LendTo = slices.Clone(who)
	return nil
}

func (f *fakeCtrl) SetShareLimit(ctx context.Context, tokens uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.status.ShareLimit = tokens
	return nil
}

func (f *fakeCtrl) Library() nodestate.LibraryView {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.library
}

// Pull reports two steps of progress (or pullSteps), then adds the model
// to the library; with pullHold it runs until ctx ends instead, as a node
// stops a download.
func (f *fakeCtrl) Pull(ctx context.Context, ref string, progress func(hub.Progress)) (library.Model, error) {
	f.pulls <- ref
	f.mu.Lock()
	steps, hold := f.pullSteps, f.pullHold
	f.mu.Unlock()
	if steps == nil {
		steps = []hub.Progress{{Status: "pulling manifest"}, {Status: "pulling 0123", File: ref, Total: 100, Completed: 100}}
	}
	for _, p := range steps {
		progress(p)
	}
	if hold {
		<-ctx.Done()
		f.pullEnded <- ctx.Err()
		return library.Model{}, fmt.Errorf("pulling %s: %w", ref, ctx.Err())
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.pullErr != nil {
		return library.Model{}, f.pullErr
	}
	m := library.Model{Name: ref, Size: 100, Source: library.SourcePotluck}
	f.library.Models = append(f.library.Models, m)
	return m, nil
}

func (f *fakeCtrl) Serve(ctx context.Context, name string) error {
	f.serves <- name
	f.mu.Lock()
	defer f.mu.Unlock()
	f.library.Serving = name
	f.status.Model = nil
	if name != "" {
		f.status.Model = &nodestate.ModelStatus{ID: name}
	}
	return nil
}

func (f *fakeCtrl) Usage() nodestate.Usage {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.usage
}

func (f *fakeCtrl) Members() nodestate.MembersView {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.members
}

func (f *fakeCtrl) Recent() []nodestate.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.recent)
}

func (f *fakeCtrl) Logs(n int) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.logs)
}

// push updates the peers the way the node would and sends e.
func (f *fakeCtrl) push(e nodestate.Event) {
	f.mu.Lock()
	if e.Peer != nil {
		i := slices.IndexFunc(f.peers, func(p nodestate.Peer) bool { return p.ID == e.Peer.ID })
		p := *e.Peer
		p.Online = e.Kind != nodestate.EventPeerLost
		if i < 0 {
			f.peers = append(f.peers, p)
		} else {
			f.peers[i] = p
		}
		f.status.PeersOnline = 0
		for _, p := range f.peers {
			if p.Online {
				f.status.PeersOnline++
			}
		}
	}
	f.mu.Unlock()
	f.events <- e
}

// notifyApp records notifications.
type notifyApp struct {
	fyne.App
	mu    sync.Mutex
	notes []string
}

func (a *notifyApp) SendNotification(n *fyne.Notification) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.notes = append(a.notes, n.Title)
}

func (a *notifyApp) sent(title string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Contains(a.notes, title)
}

// harness is a ui on Fyne's test app, whose work from goroutines runs on
// the test's goroutine when it waits.
type harness struct {
	u    *ui
	ctrl *fakeCtrl
	app  *notifyApp
	ops  chan func()
	ctx  context.Context
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	a := &notifyApp{App: test.NewTempApp(t)}
	ctrl := newFakeCtrl()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	u := newUI(ctx, a, ctrl, Options{DataDir: t.TempDir()})
	h := &harness{u: u, ctrl: ctrl, app: a, ops: make(chan func(), 256), ctx: ctx}
	u.do = func(f func()) {
		select {
		case h.ops <- f:
		case <-ctx.Done():
		}
	}
	u.quit = cancel
	return h
}

// waitFor runs queued UI work until cond holds.
func (h *harness) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for !cond() {
		select {
		case f := <-h.ops:
			f()
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// texts lists the text of every label in o, walking containers.
func texts(o fyne.CanvasObject) []string {
	switch w := o.(type) {
	case *fyne.Container:
		var out []string
		for _, c := range w.Objects {
			out = append(out, texts(c)...)
		}
		return out
	case *widget.Label:
		return []string{w.Text}
	}
	return nil
}

package tray

import (
	"context"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"fyne.io/fyne/v2/test"

	"github.com/potluck-gpu/potluck/hub"
)

// A model copied from two peers shows a row for each with what it sent of
// the file; closing the window meanwhile only hides it; Cancel stops the
// pull at the node, and the window says it was cancelled, not that it
// failed, with nothing added to the list.
func TestPullCancel(t *testing.T) {
	h := newHarness(t)
	const total = 300 << 20
	h.ctrl.pullSteps = []hub.Progress{
		{Status: "pulling manifest", File: "owner/repo:Q4_K_M"},
		{Status: "pulling 0123", File: "owner/repo/m-Q4_K_M", Total: total, Completed: 150 << 20, From: "alice, bob",
			Peers: []hub.PeerBytes{{Name: "alice", Completed: 100 << 20}, {Name: "bob", Completed: 50 << 20}}},
	}
	h.ctrl.pullHold = true
	h.u.showModels("")
	m := h.u.models
	m.ref.SetText("owner/repo:Q4_K_M")
	test.Tap(m.getBtn)
	select {
	case <-h.ctrl.pulls:
	case <-time.After(5 * time.Second):
		t.Fatal("Get did not pull")
	}
	wantRows := []string{"alice: 100 MB of 300 MB", "bob: 50 MB of 300 MB"}
	h.waitFor(t, "a row per peer", func() bool { return m.peers.Visible() && slices.Equal(texts(m.peers), wantRows) })
	for i, want := range []float64{1.0 / 3, 1.0 / 6} {
		if got := m.peerRows[i].bar.Value; math.Abs(got-want) > 1e-9 {
			t.Errorf("%s's bar at %.3f, want %.3f", m.peerRows[i].name, got, want)
		}
	}
	if !strings.Contains(m.progress.Text, "150 MB of 300 MB, from 2 peers") || m.bar.Value != 0.5 {
		t.Errorf("overall progress %q at %.2f", m.progress.Text, m.bar.Value)
	}
	if !m.cancelBtn.Visible() || m.cancelBtn.Disabled() || !m.getBtn.Disabled() {
		t.Error("no Cancel while pulling, or Get still enabled")
	}

	m.close()
	if h.u.models != m {
		t.Fatal("closing the window during a pull dropped it")
	}
	h.u.showModels("")
	if h.u.models != m {
		t.Fatal("opening the window again did not show the running pull")
	}

	test.Tap(m.cancelBtn)
	select {
	case err := <-h.ctrl.pullEnded:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("the pull ended with %v, want its context cancelled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Cancel did not stop the pull")
	}
	h.waitFor(t, "the pull to end", func() bool { return !m.pulling() })
	if m.progress.Text != textCancelled {
		t.Errorf("after Cancel the window says %q, want %q", m.progress.Text, textCancelled)
	}
	if m.cancelBtn.Visible() || m.getBtn.Disabled() || m.ref.Disabled() || m.bar.Visible() || m.peers.Visible() {
		t.Error("Cancel, the bars or the disabled Get stay after the pull ended")
	}
	h.waitFor(t, "the library read", func() bool { return m.serving.Text != "" })
	if len(m.models) != 0 {
		t.Errorf("a cancelled pull lists %v", m.models)
	}
	m.close()
	if h.u.models != nil {
		t.Error("with no pull running, closing the window kept it")
	}
}

// A pull that fails says so; the rows of peers are for copies from peers
// only.
func TestPullFails(t *testing.T) {
	h := newHarness(t)
	h.ctrl.pullErr = errors.New("the hub answered 503")
	h.u.showModels("")
	m := h.u.models
	m.ref.SetText("owner/repo:Q4_K_M")
	test.Tap(m.getBtn)
	h.waitFor(t, "the pull to end", func() bool { return !m.pulling() })
	if want := "Could not get it: the hub answered 503"; m.progress.Text != want {
		t.Errorf("the window says %q, want %q", m.progress.Text, want)
	}
	if m.peers.Visible() || len(m.peerRows) != 0 {
		t.Error("rows of peers for a pull from the hub")
	}
}

package tray

import (
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"fyne.io/fyne/v2/test"

	"github.com/potluck-gpu/potluck/nodestate"
)

// validToken looks like an EdgeVPN token: base64 of a YAML config.
var validToken = base64.StdEncoding.EncodeToString([]byte("otp:\n  dht:\n    key: abc\n    interval: 9000\nroom: def\nrendezvous: ghi\nmdns: jkl\nmax_message_size: 20971520\n"))

func TestJoinWindow(t *testing.T) {
	tests := []struct {
		name      string
		input     string
		joinErr   error
		wantJoin  string // the token Join gets; "" when it is not called
		wantError string // a substring of the inline error; "" for success
	}{
		{name: "empty", input: "  \n ", wantError: "Paste the invite token"},
		{name: "garbage", input: "hello there, this is not a token!", wantError: "This is not an invite token"},
		{name: "base64 but not a token", input: base64.StdEncoding.EncodeToString([]byte{0xff, 0x00, 0x13, 0x37}), wantError: "This is not an invite token"},
		{name: "valid", input: validToken, wantJoin: validToken},
		{name: "wrapped by a mail app", input: validToken[:30] + "\n" + validToken[30:60] + " \n" + validToken[60:], wantJoin: validToken},
		{name: "rejected by the node", input: validToken, joinErr: errors.New("the token is not valid: it was cut short"), wantJoin: validToken, wantError: "Could not join: the token is not valid: it was cut short"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.ctrl.joinErr = tc.joinErr
			h.ctrl.peers = []nodestate.Peer{{ID: "p1", Name: "alice", Mode: nodestate.ShareWorker, MemoryOffered: 8 << 30, Online: true}}
			h.u.showJoin()
			j := h.u.join
			j.token.SetText(tc.input)
			test.Tap(j.joinBtn)

			if tc.wantJoin == "" {
				if !j.problem.Visible() || !strings.Contains(j.problem.Text, tc.wantError) {
					t.Fatalf("inline error = %q (visible %v), want it to contain %q", j.problem.Text, j.problem.Visible(), tc.wantError)
				}
				select {
				case tok := <-h.ctrl.joins:
					t.Fatalf("Join was called with %q", tok)
				default:
				}
				return
			}
			if !j.busy.Visible() || !j.joinBtn.Disabled() {
				t.Error("no progress shown while joining")
			}
			select {
			case tok := <-h.ctrl.joins:
				if tok != tc.wantJoin {
					t.Errorf("Join got %q, want %q", tok, tc.wantJoin)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Join was not called")
			}
			h.waitFor(t, "the join to finish", func() bool { return !j.busy.Visible() })
			if tc.wantError != "" {
				if !j.problem.Visible() || !strings.Contains(j.problem.Text, tc.wantError) {
					t.Errorf("inline error = %q, want %q", j.problem.Text, tc.wantError)
				}
				if j.joinBtn.Disabled() {
					t.Error("Join stays disabled after a failure")
				}
				return
			}
			if !j.result.Visible() || !strings.Contains(j.result.Text, "alice") {
				t.Errorf("success text = %q, want it to name alice", j.result.Text)
			}
		})
	}
}

func TestJoinPaste(t *testing.T) {
	h := newHarness(t)
	h.app.Clipboard().SetContent("  " + validToken + "\n")
	h.u.showJoin()
	test.Tap(h.u.join.paste)
	if got := h.u.join.token.Text; got != validToken {
		t.Errorf("after Paste the box holds %q", got)
	}
}

func TestShareToggle(t *testing.T) {
	h := newHarness(t)
	h.ctrl.status.Model = &nodestate.ModelStatus{ID: "stories"} // a full server needs one
	h.u.refresh()
	h.waitFor(t, "the model in the status", func() bool { return h.u.status.Model != nil })
	expect := func(want shareCall) {
		t.Helper()
		select {
		case got := <-h.ctrl.shares:
			if got != want {
				t.Errorf("Share(%v), want Share(%v)", got, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("Share(%v) was not called", want)
		}
		h.u.refresh()
		h.waitFor(t, "the menu to follow", func() bool {
			return h.u.items.share.Checked == (want.Mode != nodestate.ShareOff) && h.u.status.Share == want.Mode
		})
	}

	h.u.items.share.Action() // on, in the default mode
	expect(shareCall{nodestate.ShareWorker, 0})
	if !strings.HasPrefix(h.u.items.status.Label, "Sharing 12.0 GB as shard") {
		t.Errorf("status line %q", h.u.items.status.Label)
	}

	h.u.items.server.Action() // switching mode while shared re-shares
	expect(shareCall{nodestate.ShareServer, 0})
	if !h.u.items.server.Checked || h.u.items.worker.Checked {
		t.Error("Share as does not show Full server")
	}

	h.u.items.share.Action() // off
	expect(shareCall{nodestate.ShareOff, 0})

	h.u.setMemory(6 << 30) // kept by the node while not shared
	expect(shareCall{nodestate.ShareOff, 6 << 30})
	h.u.refresh()
	h.waitFor(t, "the memory chosen", func() bool { return h.u.status.ShareMemory == 6<<30 })
	h.u.items.share.Action() // on again, in the mode chosen last, with the memory set
	expect(shareCall{nodestate.ShareServer, 6 << 30})
	if _, err := os.Stat(filepath.Join(h.u.dataDir, "tray.json")); err == nil {
		t.Error("the tray wrote a settings file of its own")
	}
}

// With no model, "Full server" opens the model window; a model got there
// and picked is served, and then the computer is shared as a full server.
func TestModelsWindow(t *testing.T) {
	h := newHarness(t)
	h.ctrl.mu.Lock()
	h.ctrl.status.ShareAs = nodestate.ShareServer
	h.ctrl.mu.Unlock()
	h.u.refresh()
	h.waitFor(t, "Full server chosen", func() bool { return h.u.status.ShareAs == nodestate.ShareServer })
	h.u.items.share.Action()
	if h.u.models == nil {
		t.Fatal("sharing as a full server without a model did not open the model window")
	}
	select {
	case c := <-h.ctrl.shares:
		t.Fatalf("Share(%v) was called with no model", c)
	default:
	}
	m := h.u.models
	h.waitFor(t, "the empty library", func() bool { return strings.Contains(m.serving.Text, "No models") })
	h.ctrl.mu.Lock()
	h.ctrl.library.Peers = []nodestate.PeerModel{{Name: "llama3.2:3b", Size: 2 << 30, On: []string{"alice"}}}
	h.ctrl.mu.Unlock()

	m.ref.SetText("not a reference")
	test.Tap(m.getBtn)
	if !strings.Contains(m.progress.Text, "OWNER/REPO") {
		t.Errorf("a bad reference says %q", m.progress.Text)
	}
	m.ref.SetText("owner/repo:Q4_K_M")
	test.Tap(m.getBtn)
	if got := <-h.ctrl.pulls; got != "owner/repo:Q4_K_M" {
		t.Errorf("Pull(%q)", got)
	}
	h.waitFor(t, "the pulled model in the list, and the peer's", func() bool {
		return len(m.models) == 2 && strings.Contains(m.progress.Text, "is here")
	})
	if got := modelLine(m.models[1]); !strings.Contains(got, "llama3.2:3b") || !strings.Contains(got, "on alice") {
		t.Errorf("the peer's model reads %q", got)
	}
	if m.getBtn.Disabled() || m.bar.Visible() {
		t.Error("Get stays disabled, or the bar shown, after the pull")
	}
	m.list.Select(0)
	test.Tap(m.serveBtn)
	select {
	case got := <-h.ctrl.serves:
		if got != "owner/repo:Q4_K_M" {
			t.Errorf("Serve(%q)", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve was not called")
	}
	select {
	case c := <-h.ctrl.shares:
		if c.Mode != nodestate.ShareServer {
			t.Errorf("Share(%v) after picking the model", c)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("not shared as a full server after picking a model")
	}
}

func TestDashboardPeersFromEvents(t *testing.T) {
	h := newHarness(t)
	h.ctrl.status.InMesh = true
	h.ctrl.logs = []string{"level=INFO msg=\"potluck is running\""}
	h.ctrl.recent = []nodestate.Request{{Time: time.Now(), Model: "stories260K", Node: "alice", Status: 200, Duration: 42 * time.Millisecond}}
	go h.u.run(h.ctx)
	h.u.showDashboard()
	d := h.u.dash

	peerTexts := func() []string { return texts(d.peers) }
	h.ctrl.push(nodestate.Event{Kind: nodestate.EventPeerJoined, Peer: &nodestate.Peer{ID: "p1", Name: "alice", Mode: nodestate.ShareServer, MemoryOffered: 24 << 30, Models: []string{"stories260K"}, RTTMS: 12, Version: "0.1.0"}})
	h.ctrl.push(nodestate.Event{Kind: nodestate.EventPeerJoined, Peer: &nodestate.Peer{ID: "p2", Name: "bob", Mode: nodestate.ShareWorker, MemoryOffered: 8 << 30}})
	h.waitFor(t, "alice and bob in the peers table", func() bool {
		p := peerTexts()
		return slices.Contains(p, "alice") && slices.Contains(p, "bob")
	})
	for _, want := range []string{"Full server", "24.0 GB", "12 ms", "stories260K", "Shard worker"} {
		if !slices.Contains(peerTexts(), want) {
			t.Errorf("peers table lacks %q: %q", want, peerTexts())
		}
	}
	h.waitFor(t, "the recent requests and the log", func() bool {
		return slices.Contains(texts(d.requests), "alice") && strings.Contains(d.logs.Text, "potluck is running")
	})
	if !strings.Contains(d.routing.Text, "stories260K: served by alice") {
		t.Errorf("routing = %q", d.routing.Text)
	}

	h.ctrl.push(nodestate.Event{Kind: nodestate.EventPeerLost, Peer: &nodestate.Peer{ID: "p2", Name: "bob", Mode: nodestate.ShareWorker}})
	h.waitFor(t, "bob offline", func() bool {
		return slices.ContainsFunc(peerTexts(), func(s string) bool { return strings.HasPrefix(s, "no, seen") })
	})
	h.waitFor(t, "the peer lost notification", func() bool { return h.app.sent("bob left") })
	if d.api.Text != "http://127.0.0.1:8080/v1" {
		t.Errorf("API address %q", d.api.Text)
	}
}

func TestNotifications(t *testing.T) {
	h := newHarness(t)
	go h.u.run(h.ctx)
	h.ctrl.push(nodestate.Event{Kind: nodestate.EventJoined})
	h.ctrl.push(nodestate.Event{Kind: nodestate.EventModelReady, Message: "stories260K"})
	h.waitFor(t, "joined and model ready notifications", func() bool {
		return h.app.sent("Joined the network") && h.app.sent("Model ready")
	})
}

func TestMenu(t *testing.T) {
	h := newHarness(t)
	var labels []string
	for _, it := range h.u.menu.Items {
		if !it.IsSeparator {
			labels = append(labels, it.Label)
		}
	}
	want := []string{"Not sharing", labelShare, labelShareAs, labelLendTo, labelMemory, labelDevices, labelServe, labelGet, labelJoin, labelInvite, labelAPI, labelDashboard, labelBrowser, labelLogs, labelLogin, labelQuit}
	if !slices.Equal(labels, want) {
		t.Errorf("menu = %q\nwant   %q", labels, want)
	}
	if !h.u.items.invite.Disabled {
		t.Error("Copy invite token is enabled outside a mesh")
	}

	h.u.refresh()
	h.waitFor(t, "the status", func() bool { return h.u.status.API != "" })
	h.u.items.api.Action()
	if got := h.app.Clipboard().Content(); got != "http://127.0.0.1:8080/v1" {
		t.Errorf("clipboard after Copy API address = %q", got)
	}
	h.ctrl.token = "the-token"
	h.u.items.invite.Action()
	if got := h.app.Clipboard().Content(); got != "the-token" {
		t.Errorf("clipboard after Copy invite token = %q", got)
	}
	h.u.items.quit.Action()
	if h.ctx.Err() == nil {
		t.Error("Quit did not end the app")
	}
}

func TestMemoryWindow(t *testing.T) {
	h := newHarness(t)
	h.u.showMemory()
	m := h.u.memory
	m.entry.SetText("a lot")
	test.Tap(m.save)
	if !m.problem.Visible() || m.problem.Text != errMemory.Error() {
		t.Errorf("inline error %q", m.problem.Text)
	}

	h.ctrl.status.Share, h.ctrl.status.State = nodestate.ShareWorker, nodestate.StateSharing
	h.u.refresh()
	h.waitFor(t, "the status", func() bool { return sharing(h.u.status) })
	m.entry.SetText("10")
	test.Tap(m.save)
	select {
	case got := <-h.ctrl.shares:
		if want := (shareCall{nodestate.ShareWorker, 10 << 30}); got != want {
			t.Errorf("Share(%v), want %v", got, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a shared computer did not offer the new memory")
	}
	if h.ctrl.Status().ShareMemory != 10<<30 || h.u.memory != nil {
		t.Errorf("memory setting %d, window still open: %v", h.ctrl.Status().ShareMemory, h.u.memory != nil)
	}

	// The daily limit per friend: a bad one is said inline, a good one
	// goes to the node.
	h.u.showMemory()
	m = h.u.memory
	m.limit.SetText("plenty")
	test.Tap(m.save)
	if !m.problem.Visible() || m.problem.Text != errLimit.Error() {
		t.Errorf("inline error for the limit %q", m.problem.Text)
	}
	m.limit.SetText("500k")
	test.Tap(m.save)
	for end := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		h.ctrl.mu.Lock()
		got := h.ctrl.status.ShareLimit
		h.ctrl.mu.Unlock()
		if got == 500_000 {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("the node's daily limit is %d; want 500000", got)
		}
	}
}

func TestParseMemory(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint64
		bad  bool
	}{
		{"", 0, false}, {"8", 8 << 30, false}, {"12.5 GB", 12<<30 + 1<<29, false}, {"1,5", 1<<30 + 1<<29, false},
		{"-3", 0, true}, {"lots", 0, true},
	} {
		got, err := parseMemory(tc.in)
		if (err != nil) != tc.bad || got != tc.want {
			t.Errorf("parseMemory(%q) = %d, %v", tc.in, got, err)
		}
	}
}

// The Devices menu lists llama.cpp's devices: Automatic at first, then the
// ones the user picks.
func TestDevicesMenu(t *testing.T) {
	h := newHarness(t)
	h.ctrl.mu.Lock()
	h.ctrl.status.Devices = []nodestate.DeviceInfo{
		{Name: "CUDA0", Backend: "CUDA", Description: "NVIDIA GeForce RTX 4090", TotalBytes: 24 << 30},
		{Name: "CPU", Backend: "CPU", TotalBytes: 64 << 30},
	}
	h.ctrl.mu.Unlock()
	labels := func() []string {
		var out []string
		for _, it := range h.u.items.devices.ChildMenu.Items {
			out = append(out, fmt.Sprintf("%s:%v", it.Label, it.Checked))
		}
		return out
	}
	choice := func() []string {
		h.ctrl.mu.Lock()
		defer h.ctrl.mu.Unlock()
		return slices.Clone(h.ctrl.status.DeviceChoice)
	}
	h.u.refresh()
	want := []string{labelAutomatic + ":true", "CUDA0 · NVIDIA GeForce RTX 4090 · 24.0 GB:false", "CPU · 64.0 GB:false"}
	h.waitFor(t, "the devices in the menu", func() bool { return len(labels()) == 3 })
	if got := labels(); !slices.Equal(got, want) {
		t.Fatalf("devices menu %q, want %q", got, want)
	}
	// The choice goes to the node in the background.
	eventually := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	h.u.items.devices.ChildMenu.Items[1].Action() // choose the GPU
	eventually("CUDA0 chosen", func() bool { return slices.Equal(choice(), []string{"CUDA0", "CPU"}) })
	h.u.refresh()
	h.waitFor(t, "the menu to follow", func() bool {
		items := h.u.items.devices.ChildMenu.Items
		return !items[0].Checked && items[1].Checked
	})
	h.u.items.devices.ChildMenu.Items[0].Action() // back to automatic
	eventually("automatic again", func() bool { return len(choice()) == 0 })
}

// Lend to says what it is for, and lists every member: Every member at
// first, then the members the user ticks; unticking the last one lends to
// every member again.
func TestLendToMenu(t *testing.T) {
	h := newHarness(t)
	h.ctrl.mu.Lock()
	h.ctrl.peers = []nodestate.Peer{{ID: "12D3KooWbob", Name: "bob"}, {ID: "12D3KooWalice", Name: "alice"}}
	h.ctrl.mu.Unlock()
	labels := func() []string {
		var out []string
		for _, it := range h.u.items.lend.ChildMenu.Items {
			if !it.IsSeparator {
				out = append(out, fmt.Sprintf("%s:%v:%v", it.Label, it.Checked, it.Disabled))
			}
		}
		return out
	}
	chosen := func() []string {
		h.ctrl.mu.Lock()
		defer h.ctrl.mu.Unlock()
		return slices.Clone(h.ctrl.status.LendTo)
	}
	eventually := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	h.u.refresh()
	want := []string{labelLendWhy + ":false:true", labelLendAll + ":true:false", "alice:false:false", "bob:false:false"}
	h.waitFor(t, "the members in the menu", func() bool { return slices.Equal(labels(), want) })
	h.u.items.lend.ChildMenu.Items[4].Action() // bob
	eventually("bob chosen", func() bool { return slices.Equal(chosen(), []string{"bob"}) })
	h.u.refresh()
	want = []string{labelLendWhy + ":false:true", labelLendAll + ":false:false", "alice:false:false", "bob:true:false"}
	h.waitFor(t, "the menu to follow", func() bool { return slices.Equal(labels(), want) })
	h.u.items.lend.ChildMenu.Items[4].Action() // bob again: nobody chosen, so every member
	eventually("every member again", func() bool { return len(chosen()) == 0 })
}

func TestDashboardFollowsTrayHost(t *testing.T) {
	opened := func(t *testing.T) *harness {
		h := newHarness(t)
		h.u.showDashboard()
		h.u.dashForHost = true // as Run does when no tray host shows the icon
		return h
	}
	t.Run("opened for lack of a host closes", func(t *testing.T) {
		h := opened(t)
		h.u.trayShown(false) // the host is still missing
		if !h.u.dashVisible.Load() {
			t.Fatal("the dashboard closed with no tray host")
		}
		h.u.trayShown(true)
		if h.u.dashVisible.Load() {
			t.Fatal("the dashboard stays open once the icon is shown")
		}
		h.u.trayShown(false) // the panel restarts
		h.u.trayShown(true)
		if h.u.dashVisible.Load() {
			t.Error("the dashboard reopened")
		}
	})
	t.Run("asked for stays", func(t *testing.T) {
		h := opened(t)
		h.u.showDashboard() // a second launch, or the menu
		h.u.trayShown(true)
		if !h.u.dashVisible.Load() {
			t.Error("the dashboard the user asked for closed")
		}
	})
	t.Run("reopened after the icon showed stays", func(t *testing.T) {
		h := opened(t)
		h.u.trayShown(true)
		h.u.showDashboard()
		h.u.trayShown(false)
		h.u.trayShown(true)
		if !h.u.dashVisible.Load() {
			t.Error("the dashboard the user reopened closed")
		}
	})
}

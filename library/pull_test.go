package library_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/engine/enginetest"
	"github.com/potluck-gpu/potluck/hub"
	"github.com/potluck-gpu/potluck/library"
)

// fakeSource is a Source of our own making: it has what has says, and a
// fetch that works writes the test model into the store under name.
type fakeSource struct {
	name string
	has  func(ref string) bool
	err  error // what Fetch answers; nil: it copies the model
	lib  *library.Library
	dir  string
	data []byte

	fetches atomic.Int32
	gate    chan struct{} // if not nil, Fetch waits for it
}

func (f *fakeSource) Name() string        { return f.name }
func (f *fakeSource) Has(ref string) bool { return f.has(ref) }

func (f *fakeSource) Fetch(ctx context.Context, ref string, progress func(hub.Progress)) (library.Model, error) {
	f.fetches.Add(1)
	if f.gate != nil {
		<-f.gate
	}
	if f.err != nil {
		return library.Model{}, f.err
	}
	name := strings.NewReplacer(":", "-").Replace(ref)
	if err := os.MkdirAll(filepath.Dir(filepath.Join(f.dir, name)), 0o755); err != nil {
		return library.Model{}, err
	}
	if err := os.WriteFile(filepath.Join(f.dir, name+".gguf"), f.data, 0o644); err != nil {
		return library.Model{}, err
	}
	m, _ := f.lib.Find(name)
	progress(hub.Progress{Status: "success", File: m.Name})
	return m, nil
}

var _ library.Source = (*fakeSource)(nil)

func always(string) bool { return true }
func never(string) bool  { return false }

type pullFixture struct {
	lib    *library.Library
	peers  *fakeSource
	hub    *fakeSource
	puller *library.Puller
	pulled []string
}

func newPullFixture(t *testing.T) *pullFixture {
	t.Helper()
	data, err := os.ReadFile(enginetest.TestModel(t).Path)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	lib := library.New([]library.Root{{Source: library.SourcePotluck, Dir: dir}}, filepath.Join(t.TempDir(), "library.json"), nil)
	f := &pullFixture{lib: lib}
	f.peers = &fakeSource{name: "peers", has: never, lib: lib, dir: dir, data: data}
	f.hub = &fakeSource{name: "Hugging Face", has: hub.LooksLikeRef, lib: lib, dir: dir, data: data}
	var mu sync.Mutex
	f.puller = &library.Puller{Lib: lib, Sources: []library.Source{f.peers, f.hub}, Pulled: func(m library.Model, _ time.Duration) {
		mu.Lock()
		f.pulled = append(f.pulled, m.Name)
		mu.Unlock()
	}}
	return f
}

func statuses(progress *[]hub.Progress) func(hub.Progress) {
	return func(p hub.Progress) { *progress = append(*progress, p) }
}

func TestPull(t *testing.T) {
	boom := errors.New("boom")
	for _, tc := range []struct {
		name      string
		ref       string
		peersHas  bool
		peersErr  error
		hubErr    error
		wantErr   string // empty: the pull works
		wantFrom  []int32
		wantSteps []string
	}{
		{name: "peers have it", ref: "llama3.2:3b", peersHas: true,
			wantFrom: []int32{1, 0}, wantSteps: []string{"success"}},
		{name: "peers first, though the hub has it too", ref: "owner/repo:Q4_K_M", peersHas: true,
			wantFrom: []int32{1, 0}, wantSteps: []string{"success"}},
		{name: "only the hub has it", ref: "owner/repo:Q4_K_M",
			wantFrom: []int32{0, 1}, wantSteps: []string{"success"}},
		{name: "peers fail, the hub sends it", ref: "owner/repo:Q4_K_M", peersHas: true, peersErr: boom,
			wantFrom: []int32{1, 1}, wantSteps: []string{"peers could not send it (boom): trying Hugging Face", "success"}},
		{name: "peers fail and the hub cannot have it", ref: "llama3.2:3b", peersHas: true, peersErr: boom,
			wantErr: "copying llama3.2:3b from peers: boom", wantFrom: []int32{1, 0}},
		{name: "the last resort answers as it is", ref: "owner/repo:Q4_K_M", hubErr: boom,
			wantErr: "boom", wantFrom: []int32{0, 1}},
		{name: "peers fail, then the hub too", ref: "owner/repo:Q4_K_M", peersHas: true, peersErr: errors.New("bad chunk"), hubErr: boom,
			wantErr: "boom", wantFrom: []int32{1, 1}, wantSteps: []string{"peers could not send it (bad chunk): trying Hugging Face"}},
		{name: "nobody has it", ref: "llama3.2:3b",
			wantErr: `"llama3.2:3b" is not a GGUF file, nor a model in the library`, wantFrom: []int32{0, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newPullFixture(t)
			if tc.peersHas {
				f.peers.has = always
			}
			f.peers.err, f.hub.err = tc.peersErr, tc.hubErr
			var progress []hub.Progress
			m, err := f.puller.Pull(context.Background(), tc.ref, statuses(&progress))
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr && !strings.HasPrefix(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				if tc.peersErr != nil && tc.hubErr == nil && !errors.Is(err, tc.peersErr) {
					t.Errorf("err %v does not wrap the peers' error", err)
				}
				if len(f.pulled) != 0 {
					t.Errorf("a failed pull was reported pulled: %v", f.pulled)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				if m.Path == "" || !slices.Equal(f.pulled, []string{m.Name}) {
					t.Errorf("pulled %+v, reported %v", m, f.pulled)
				}
			}
			if got := []int32{f.peers.fetches.Load(), f.hub.fetches.Load()}; !slices.Equal(got, tc.wantFrom) {
				t.Errorf("fetches from peers and hub %v, want %v", got, tc.wantFrom)
			}
			var steps []string
			for _, p := range progress {
				steps = append(steps, p.Status)
			}
			if !slices.Equal(steps, tc.wantSteps) {
				t.Errorf("progress %q, want %q", steps, tc.wantSteps)
			}
		})
	}
}

func TestPullStopsWithItsContext(t *testing.T) {
	f := newPullFixture(t)
	f.peers.has = always
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	f.peers.err = errors.New("copy: " + context.Canceled.Error())
	if _, err := f.puller.Pull(ctx, "owner/repo:Q4_K_M", nil); !errors.Is(err, context.Canceled) {
		t.Errorf("err %v, want the context's", err)
	}
	if n := f.hub.fetches.Load(); n != 0 {
		t.Errorf("a cancelled pull went on to the hub (%d fetches)", n)
	}
}

func TestPullOfAModelHere(t *testing.T) {
	f := newPullFixture(t)
	f.peers.has = always
	if _, err := f.puller.Pull(context.Background(), "stories", nil); err != nil {
		t.Fatal(err)
	}
	var progress []hub.Progress
	m, err := f.puller.Pull(context.Background(), "stories", statuses(&progress))
	if err != nil {
		t.Fatal(err)
	}
	if n := f.peers.fetches.Load(); n != 1 {
		t.Errorf("%d fetches, want the first pull's alone", n)
	}
	if len(progress) != 1 || !reflect.DeepEqual(progress[0], hub.Progress{Status: "success", File: m.Name, From: "here"}) {
		t.Errorf("progress %+v, want one success from here", progress)
	}
}

// Two pulls of one model at once copy it once: the second waits for the
// first and finds the model here.
func TestPullsOfOneModelCopyOnce(t *testing.T) {
	f := newPullFixture(t)
	f.peers.has = always
	f.peers.gate = make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := f.puller.Pull(context.Background(), "stories", nil)
			errs <- err
		}()
	}
	for f.peers.fetches.Load() == 0 {
		time.Sleep(time.Millisecond) // the first pull reaches the source
	}
	close(f.peers.gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if n := f.peers.fetches.Load(); n != 1 {
		t.Errorf("%d fetches, want 1", n)
	}
}

func TestPeerModels(t *testing.T) {
	sha := func(c string) string { return strings.Repeat(c, 64) }
	a := library.Peer{ID: "A", Name: "alice", Files: []library.PeerFile{
		{Model: "big", File: "big-00002-of-00002.gguf", SHA256: sha("2"), Size: 20},
		{Model: "big", File: "big-00001-of-00002.gguf", SHA256: sha("1"), Size: 10},
		{Model: "small", File: "small.gguf", SHA256: sha("3"), Size: 5},
		{Model: "bad", File: "bad.gguf", SHA256: "short", Size: 1},
		{Model: "", File: "nameless.gguf", SHA256: sha("4"), Size: 1},
	}}
	b := library.Peer{ID: "B", Name: "bob", Files: []library.PeerFile{{Model: "small", File: "small.gguf", SHA256: sha("3"), Size: 5}}}
	models, holders := library.PeerModels([]library.Peer{a, b})
	var got []string
	for _, m := range models {
		got = append(got, m.Name)
	}
	if !slices.Equal(got, []string{"big", "small", "small"}) {
		t.Fatalf("models %v", got)
	}
	big := models[0]
	if big.Path != "big-00001-of-00002.gguf" || big.Size != 30 || big.SHA256 != "" || big.Source != "peer alice" || len(big.Files) != 2 {
		t.Errorf("a split model: %+v", big)
	}
	if small := models[1]; small.SHA256 != sha("3") || small.Size != 5 {
		t.Errorf("a one-file model: %+v", small)
	}
	var who []string
	for _, p := range holders[sha("3")] {
		who = append(who, p.Name)
	}
	if !slices.Equal(who, []string{"alice", "bob"}) || len(holders) != 3 {
		t.Errorf("holders of small %v; %d files held", who, len(holders))
	}
	if _, ok := library.Match(models, "big"); !ok {
		t.Error("Match does not find a peer's model")
	}
}

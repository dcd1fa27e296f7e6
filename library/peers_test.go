package library_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/engine/enginetest"
	"github.com/potluck-gpu/potluck/hub"
	"github.com/potluck-gpu/potluck/library"
	"github.com/potluck-gpu/potluck/swarm"
)

// A model copied from two peers reports, step by step, what each of them
// sent of the file: the numbers the tray draws a bar per peer with.
func TestPeersReportEachPeer(t *testing.T) {
	path := enginetest.TestModel(t).Path
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	sha := hex.EncodeToString(sum[:])
	sent := map[string]*atomic.Int64{}
	urls := map[string]string{}
	for _, id := range []string{"A", "B"} {
		n := new(atomic.Int64)
		s := swarm.NewServer(func(h string) (string, bool) { return path, h == sha }, t.TempDir(), func(b int64) { n.Add(b) })
		s.Chunk = 64 << 10
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(5 * time.Millisecond) // so that both peers get chunks
			s.ServeHTTP(w, r)
		}))
		t.Cleanup(srv.Close)
		sent[id], urls[id] = n, srv.URL
	}
	file := []library.PeerFile{{Model: "stories", File: "stories.gguf", SHA256: sha, Size: uint64(len(data))}}
	store := t.TempDir()
	lib := library.New([]library.Root{{Source: library.SourcePotluck, Dir: store}}, filepath.Join(t.TempDir(), "library.json"), nil)
	p := &library.Peers{Lib: lib, Store: store, Client: http.DefaultClient,
		Online: func() []library.Peer {
			return []library.Peer{{ID: "A", Name: "alice", Files: file}, {ID: "B", Name: "bob", Files: file}}
		},
		Dial: func(_ context.Context, id string) (string, error) { return urls[id], nil },
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var steps []hub.Progress
	if _, err := p.Fetch(ctx, "stories", func(s hub.Progress) { steps = append(steps, s) }); err != nil {
		t.Fatal(err)
	}
	var last hub.Progress
	for _, s := range steps {
		if s.Total == 0 {
			continue
		}
		last = s
		var names []string
		var bytes int64
		for _, pb := range s.Peers {
			names = append(names, pb.Name)
			bytes += pb.Completed
		}
		if !slices.Equal(names, []string{"alice", "bob"}) || bytes != s.Completed {
			t.Fatalf("step %+v: want alice and bob, with the bytes done between them", s)
		}
	}
	want := []hub.PeerBytes{{Name: "alice", Completed: sent["A"].Load()}, {Name: "bob", Completed: sent["B"].Load()}}
	if last.Completed != int64(len(data)) || !slices.Equal(last.Peers, want) {
		t.Errorf("last step %+v, want all %d bytes: %+v", last, len(data), want)
	}
	if want[0].Completed == 0 || want[1].Completed == 0 {
		t.Errorf("peers sent %+v: want both to", want)
	}
}

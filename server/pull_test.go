package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/engine/enginetest"
	"github.com/potluck-gpu/potluck/hub"
	"github.com/potluck-gpu/potluck/hub/hubtest"
	"github.com/potluck-gpu/potluck/library"
	"github.com/potluck-gpu/potluck/nodestate"
	"github.com/potluck-gpu/potluck/server"
)

// pullNode pulls for real: a library with a store, from a hub.
type pullNode struct {
	adminNode
	lib    *library.Library
	puller *library.Puller
	ended  chan error // what each Pull returned
}

func (n *pullNode) Library() nodestate.LibraryView {
	models, _ := n.lib.List()
	return nodestate.LibraryView{Models: models}
}

func (n *pullNode) Pull(ctx context.Context, ref string, progress func(hub.Progress)) (library.Model, error) {
	m, err := n.puller.Pull(ctx, ref, progress)
	n.ended <- err
	return m, err
}

// A client that goes away in the middle of POST /api/pull stops the pull
// (that is how the web page cancels one): the node stops downloading at
// once, lists no model, and keeps the part it has, which the next pull
// resumes with a Range request.
func TestPullStopsWhenItsClientGoes(t *testing.T) {
	data, err := os.ReadFile(enginetest.TestModel(t).Path)
	if err != nil {
		t.Fatal(err)
	}
	h := hubtest.New(t)
	h.Add("owner/slow", "slow-F32.gguf", data)
	h.Pace(int64(len(data)) / 10) // ten seconds for the whole file
	store := t.TempDir()
	lib := library.New([]library.Root{{Source: library.SourcePotluck, Dir: store}}, filepath.Join(t.TempDir(), "library.json"), nil)
	node := &pullNode{lib: lib, ended: make(chan error, 2)}
	node.puller = &library.Puller{Lib: lib, Sources: []library.Source{
		library.Hub{Lib: lib, Client: hub.NewClient(h.URL, "", "potluck-test"), Store: store},
	}}
	s, err := server.New(server.Config{Addr: "127.0.0.1:0"}, staticRouter{model: "m"}, node, nil)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	pull := func(ctx context.Context, body string) *http.Response {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, ts.URL+"/api/pull", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("/api/pull: %s", resp.Status)
		}
		return resp
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	resp := pull(ctx, `{"model":"owner/slow/slow-F32.gguf"}`)
	sc := bufio.NewScanner(resp.Body)
	for {
		if !sc.Scan() {
			t.Fatalf("the pull ended before any bytes came: %v", sc.Err())
		}
		var p hub.Progress
		if err := json.Unmarshal(sc.Bytes(), &p); err != nil {
			t.Fatalf("not a progress line: %q", sc.Text())
		}
		if p.Total > 0 && p.Completed > 0 {
			if p.Completed == p.Total {
				t.Fatal("the whole file came before the test could cancel: pace the hub slower")
			}
			break
		}
	}
	start := time.Now()
	cancel()
	resp.Body.Close()
	select {
	case err := <-node.ended:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("the pull ended with %v, want it cancelled", err)
		}
	case <-time.After(5 * time.Second): // the rest of the file takes 9 s
		t.Fatal("the pull goes on after its client went away")
	}
	t.Logf("the pull stopped %s after its client went away", time.Since(start).Round(time.Millisecond))
	if !h.Idle(5 * time.Second) {
		t.Fatal("the hub is still sending the file")
	}
	if served := h.Served(); served >= int64(len(data)) {
		t.Errorf("the hub sent all %d bytes", served)
	}

	var view nodestate.LibraryView
	if err := getJSON(ts.URL+"/api/models", &view); err != nil {
		t.Fatal(err)
	}
	if len(view.Models) != 0 {
		t.Errorf("after a cancelled pull the library lists %+v", view.Models)
	}
	parts, _ := filepath.Glob(filepath.Join(store, "owner", "slow", ".slow-F32.gguf.*.partial"))
	if len(parts) != 1 {
		t.Fatalf("partial files %v, want the one kept for a resume", parts)
	}
	fi, err := os.Stat(parts[0])
	if err != nil || fi.Size() == 0 || fi.Size() >= int64(len(data)) {
		t.Fatalf("the partial file: %v, %v", fi, err)
	}

	// Pulled again, it resumes where it stopped.
	h.Pace(0)
	resp = pull(context.Background(), `{"model":"owner/slow/slow-F32.gguf","stream":false}`)
	resp.Body.Close()
	if err := <-node.ended; err != nil {
		t.Fatal(err)
	}
	ranges := h.Ranges()
	if want := "bytes=" + strconv.FormatInt(fi.Size(), 10) + "-"; ranges[len(ranges)-1] != want {
		t.Errorf("the second pull asked for %q, want %q", ranges[len(ranges)-1], want)
	}
	if _, ok := lib.Find("owner/slow/slow-F32"); !ok {
		t.Error("the resumed pull did not add the model")
	}
}

//go:build unix

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/engine/enginetest"
	"github.com/potluck-gpu/potluck/hub/hubtest"
	"github.com/potluck-gpu/potluck/internal/nodetest"
	"github.com/potluck-gpu/potluck/nodestate"
)

// The page gets a model, and cancels it, in a real browser against a real
// node: while the hub sends the file slowly the page shows the bytes and a
// Cancel button; Cancel aborts the request, the node stops downloading at
// once and lists no model, and the page says "Cancelled", not an error.
// Getting it again resumes from the part the node kept; a model that is
// nowhere is an error.
func TestWebPagePullCancels(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium not found: install Debian's chromium package (make deps does) to run the web page test")
	}
	h := hubtest.New(t)
	data := h.AddFile(t, "owner/slow", "slow-F32.gguf", enginetest.TestModel(t).Path)
	h.Pace(int64(len(data)) / 30) // thirty seconds for the whole file
	p := startPotluckEnv(t, modelsEnv(t, h, data))
	b := startCDP(t, chromium)
	tab := b.open(t, p.API+"/")
	tab.waitTrue(t, "the page reading the node", `document.getElementById("live").textContent === "live"`, 20*time.Second)

	getRef := func(ref string) {
		t.Helper()
		if err := tab.eval(fmt.Sprintf(`document.getElementById("manage").open = true;
			document.getElementById("pull-ref").value = %q;
			document.getElementById("pull-form").requestSubmit()`, ref), nil); err != nil {
			t.Fatal(err)
		}
	}
	getRef("owner/missing/missing-F32.gguf")
	tab.waitTrue(t, "a missing model said so", `document.getElementById("pull-msg").className === "error" &&
		document.getElementById("pull-msg").textContent.startsWith("Could not get it: 404") && !document.getElementById("pull-get").disabled`, 20*time.Second)

	getRef("owner/slow/slow-F32.gguf")
	tab.waitTrue(t, "the bytes coming, with Cancel", `!document.getElementById("pull-cancel").hidden &&
		document.getElementById("pull-bar").value > 0 && document.getElementById("pull-msg").textContent.includes(" of ")`, 20*time.Second)
	if n := h.Active(); n != 1 {
		t.Fatalf("%d transfers from the hub during the pull, want 1", n)
	}
	if err := tab.eval(`document.getElementById("pull-cancel").click()`, nil); err != nil {
		t.Fatal(err)
	}
	tab.waitTrue(t, "the pull cancelled", `document.getElementById("pull-msg").textContent.startsWith("Cancelled: no model was added") &&
		document.getElementById("pull-msg").className !== "error" &&
		document.getElementById("pull-cancel").hidden && !document.getElementById("pull-get").disabled`, 10*time.Second)
	if !h.Idle(5 * time.Second) { // the rest of the file takes half a minute
		t.Fatal("the node goes on downloading after the page cancelled")
	}
	if served := h.Served(); served >= int64(len(data)) {
		t.Fatalf("the hub sent the whole file (%d bytes)", served)
	}
	if lib := nodeLibrary(t, p); hasModel(lib, "slow") {
		t.Errorf("after a cancelled pull the node lists %+v", lib.Models)
	}
	parts, _ := filepath.Glob(filepath.Join(p.DataDir, "models", "owner", "slow", ".slow-F32.gguf.*.partial"))
	if len(parts) != 1 {
		t.Fatalf("partial files %v, want the one kept for a resume", parts)
	}
	kept, err := os.Stat(parts[0])
	if err != nil || kept.Size() == 0 {
		t.Fatalf("the partial file: %v", err)
	}

	h.Pace(0)
	getRef("owner/slow/slow-F32.gguf")
	tab.waitTrue(t, "the model here", `document.getElementById("pull-msg").textContent.startsWith("owner/slow/slow-F32.gguf is here")`, 20*time.Second)
	ranges := h.Ranges()
	if want := "bytes=" + strconv.FormatInt(kept.Size(), 10) + "-"; ranges[len(ranges)-1] != want {
		t.Errorf("the second pull asked the hub for %q, want %q (ranges %q)", ranges[len(ranges)-1], want, ranges)
	}
	if lib := nodeLibrary(t, p); !hasModel(lib, "slow") {
		t.Errorf("after the second pull the node lists %+v", lib.Models)
	}
}

func nodeLibrary(t *testing.T, p *proc) nodestate.LibraryView {
	t.Helper()
	var v nodestate.LibraryView
	if err := nodetest.GetJSON(p.API+"/api/models", &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func hasModel(v nodestate.LibraryView, part string) bool {
	for _, m := range v.Models {
		if strings.Contains(m.Name, part) {
			return true
		}
	}
	return false
}

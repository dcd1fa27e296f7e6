//go:build unix

package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/engine/enginetest"
	"github.com/potluck-gpu/potluck/internal/nodetest"
)

var updatePageShot = flag.Bool("update-docs", false, "write the web page's screenshot to docs/ (else to a temporary directory)")

// The web page in a real browser, against a head that splits the test
// model with a worker: it shows the node, the peer with its connection, a
// bar per device of the plan, and a chat answer streamed in pieces that
// then shows up among the recent requests and, for the worker's share, in
// who served whom. With -update-docs it saves the
// screenshot the README shows, docs/web-page.png.
// Another site cannot load the page, and neither can a rebinding name.
func TestWebPage(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium not found: install Debian's chromium package (make deps does) to run the web page test")
	}
	m := enginetest.TestModel(t)
	token := newToken(t)
	env := []string{"POTLUCK_P2P_HEARTBEAT=1s"}
	head := startPotluckEnv(t, env, meshArgs(token, "--name", "kitchen", "--model", m.Path, "--split", "all")...)
	boot := head.meshStatus(t).P2PAddrs[0]
	worker := startPotluckEnv(t, env, meshArgs(token, "--name", "attic", "--share", "worker", "--bootstrap", boot)...)
	workerID := worker.meshStatus(t).PeerID
	head.waitPlan(t, "the worker in the plan", 30*time.Second, func(d planDoc) bool { return layersOf(d, workerID) > 0 })

	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "<!doctype html><title>elsewhere</title><p>another site")
	}))
	t.Cleanup(elsewhere.Close)
	b := startCDP(t, chromium, "--host-resolver-rules=MAP elsewhere.test 127.0.0.1, MAP rebind.test 127.0.0.1")

	tab := b.open(t, head.API+"/")
	tab.waitTrue(t, "the node's name", `document.getElementById("node-facts").innerText.includes("kitchen")`, 20*time.Second)
	tab.waitTrue(t, "the worker among the peers, connected directly",
		`[...document.querySelectorAll("#peer-rows tr.peer")].some(r => r.querySelector(".peer-name").textContent === "attic" &&
			r.querySelector(".peer-conn").textContent.includes("direct") && r.textContent.includes("CPU"))`, 20*time.Second)
	var bars []struct {
		Label string
		Cells int
	}
	tab.waitTrue(t, "a bar for each device of the plan", `document.querySelectorAll("#plan-bars .device-bar").length === 2`, 10*time.Second)
	if err := tab.eval(`[...document.querySelectorAll("#plan-bars .device-bar")].map(r => ({label: r.querySelector(".bar-label").innerText,
		cells: r.querySelectorAll(".layer.on").length}))`, &bars); err != nil {
		t.Fatal(err)
	}
	plan := head.plan(t)
	for i, d := range plan.Plan.Devices {
		if !strings.Contains(bars[i].Label, d.NodeName) || !strings.Contains(bars[i].Label, fmt.Sprintf("%d layers", d.Layers)) || bars[i].Cells != d.Layers {
			t.Errorf("bar %d: %+v; want %s with %d layers", i, bars[i], d.NodeName, d.Layers)
		}
	}

	// Chat: the answer arrives in pieces, and the request is listed with
	// the node that served it.
	tab.waitTrue(t, "the model in the chat's list", fmt.Sprintf(`document.getElementById("model").value === %q`, m.Alias), 10*time.Second)
	if err := tab.eval(`document.getElementById("prompt").value = "Tell me a story"; document.getElementById("chat-form").requestSubmit()`, nil); err != nil {
		t.Fatal(err)
	}
	tab.waitTrue(t, "the streamed answer", `(() => { const m = document.querySelector("#chat-log .msg.assistant"); return m && m.dataset.done === "true"; })()`, 30*time.Second)
	var answer struct {
		Text   string
		Chunks int
		Failed bool
		Meta   string
	}
	if err := tab.eval(`(() => { const m = document.querySelector("#chat-log .msg.assistant");
		return {text: m.querySelector(".text").textContent, chunks: Number(m.dataset.chunks), failed: m.classList.contains("failed"),
			meta: (m.querySelector(".meta") || {}).textContent || ""}; })()`, &answer); err != nil {
		t.Fatal(err)
	}
	t.Logf("answer in %d pieces: %q (%s)", answer.Chunks, answer.Text, answer.Meta)
	if answer.Failed || strings.TrimSpace(answer.Text) == "" || answer.Chunks < 2 || answer.Meta != "served by kitchen" {
		t.Errorf("answer: %+v; want text streamed in several pieces, served by kitchen", answer)
	}
	tab.waitTrue(t, "the request among the recent ones", `[...document.querySelectorAll("#request-rows tr.request")].some(r =>
		r.querySelector(".served-by").textContent === "kitchen" && r.textContent.includes("200"))`, 5*time.Second)
	// The split served this machine with the worker's layers too: the
	// worker's share shows among what this machine used.
	tab.waitTrue(t, "the worker's share in who served whom", `[...document.querySelectorAll("#usage-rows tr.usage")].some(r =>
		r.cells[0].textContent === "attic" && r.cells[6].textContent !== "0")`, 15*time.Second)
	// The page changes its node when its user asks: the worker shares
	// 2 GiB from its own page.
	wtab := b.open(t, worker.API+"/")
	wtab.waitTrue(t, "the worker's page", `document.getElementById("node-facts").innerText.includes("attic")`, 20*time.Second)
	if err := wtab.eval(`document.getElementById("manage").open = true; document.getElementById("share-mode").value = "worker";
		document.getElementById("share-memory").value = "2"; document.getElementById("share-form").requestSubmit()`, nil); err != nil {
		t.Fatal(err)
	}
	wtab.waitTrue(t, "the change confirmed on the page", `document.getElementById("manage-msg").textContent === "Sharing worker: done."`, 20*time.Second)
	var ws struct {
		Share         string `json:"share"`
		MemoryOffered uint64 `json:"memory_offered"`
	}
	if err := nodetest.GetJSON(worker.API+"/api/status", &ws); err != nil || ws.Share != "worker" || ws.MemoryOffered != 2<<30 {
		t.Errorf("after sharing 2 GiB from the page: %+v, %v", ws, err)
	}
	if err := tab.eval(`document.getElementById("prompt").value = ""; document.activeElement.blur()`, nil); err != nil {
		t.Fatal(err)
	}
	shot := tab.screenshot(t)
	if !bytes.HasPrefix(shot, []byte("\x89PNG")) {
		t.Fatalf("the screenshot is no PNG (%d bytes)", len(shot))
	}
	dir := t.TempDir()
	if *updatePageShot {
		dir = "docs"
	}
	if err := os.WriteFile(filepath.Join(dir, "web-page.png"), shot, 0o644); err != nil {
		t.Fatal(err)
	}

	// Another site: its fetches and frames of the page are refused at the
	// node, and it reads nothing.
	before := head.refusedCounts(t)
	port := must(url.Parse(elsewhere.URL)).Port()
	other := b.open(t, "http://elsewhere.test:"+port+"/")
	other.waitTrue(t, "the other site", `document.title === "elsewhere"`, 10*time.Second)
	var got string
	if err := other.eval(fmt.Sprintf(`(async () => {
		const out = [];
		try { const r = await fetch(%[1]q); out.push("read " + r.status + " " + (await r.text()).slice(0, 40)); } catch (e) { out.push("cors: " + e.name); }
		const r = await fetch(%[1]q, {mode: "no-cors"}); out.push("no-cors: " + r.type + " " + (await r.text()).length);
		await new Promise(done => { const f = document.createElement("iframe"); f.onload = done; f.src = %[1]q; document.body.append(f); setTimeout(done, 5000); });
		return out.join("; "); })()`, head.API+"/"), &got); err != nil {
		t.Fatal(err)
	}
	t.Logf("the other site got: %s", got)
	if got != "cors: TypeError; no-cors: opaque 0" {
		t.Errorf("another site got %q; want a network error and an opaque answer", got)
	}
	if refused := head.waitRefused(t, before, map[string]float64{"origin": 3}, 10*time.Second); refused["origin"] < 3 {
		t.Errorf("refused %v; want the fetch, the no-cors fetch and the frame refused at the node", refused)
	}

	// A rebinding name: the node answers 403 and no page.
	rebind := b.open(t, "http://rebind.test:"+must(url.Parse(head.API)).Port()+"/")
	rebind.waitTrue(t, "the node's refusal", `document.body && document.body.innerText.includes("answers only to")`, 10*time.Second)
	var hasPage bool
	if err := rebind.eval(`document.getElementById("peers") !== null || document.scripts.length > 0`, &hasPage); err != nil || hasPage {
		t.Errorf("the rebinding name got the page (%v)", err)
	}
}

// With an API key, the page asks for it once, keeps it for the tab, and
// shows the node with it.
func TestWebPageAsksForKey(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium not found: install Debian's chromium package (make deps does) to run the web page test")
	}
	const key = "page-test-key-9f3b"
	api := startKeyedNode(t, key)
	b := startCDP(t, chromium)
	tab := b.open(t, api+"/")
	tab.waitTrue(t, "the key form", `!document.getElementById("key-form").hidden`, 20*time.Second)
	if err := tab.eval(`document.getElementById("key").value = "wrong"; document.getElementById("key-form").requestSubmit()`, nil); err != nil {
		t.Fatal(err)
	}
	tab.waitTrue(t, "the key asked again", `!document.getElementById("key-form").hidden && document.getElementById("key-why").textContent.includes("refused")`, 10*time.Second)
	if err := tab.eval(fmt.Sprintf(`document.getElementById("key").value = %q; document.getElementById("key-form").requestSubmit()`, key), nil); err != nil {
		t.Fatal(err)
	}
	tab.waitTrue(t, "the node with the key", `document.getElementById("node-facts").innerText.includes("keyed") && document.getElementById("key-form").hidden`, 10*time.Second)
	// A mark the reload wipes, so that the old page is never taken for the new.
	if err := tab.eval(`window.beforeReload = true; location.reload()`, nil); err != nil {
		t.Fatal(err)
	}
	tab.waitTrue(t, "the node after a reload, with no question", `!window.beforeReload && document.readyState === "complete" &&
		document.getElementById("key-form") !== null && document.getElementById("node-facts").innerText.includes("keyed")`, 10*time.Second)
	var asked bool
	if err := tab.eval(`!document.getElementById("key-form").hidden`, &asked); err != nil || asked {
		t.Errorf("the page asked for the key again after a reload (%v)", err)
	}
}

// startKeyedNode runs a node whose API takes key, outside any network, and
// waits for its API.
func startKeyedNode(t *testing.T, key string) string {
	t.Helper()
	addr, err := nodetest.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	n := nodetest.StartNoWait(t, nodetest.Config{
		Addr:    addr,
		Command: []string{"run", "--api", addr, "--data-dir", t.TempDir(), "--name", "keyed"},
		Env:     append(os.Environ(), "POTLUCK_API_KEY="+key),
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = n.Until(ctx, "the keyed node's API", func() bool {
		var st map[string]any
		return nodetest.GetJSON(n.API+"/api/status", &st, "Authorization", "Bearer "+key) == nil
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, n.Logs.String())
	}
	return n.API
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

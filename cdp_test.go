//go:build unix

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/internal/nodetest"
)

// cdpBrowser is a headless Chromium driven over the DevTools protocol on a
// pipe (--remote-debugging-pipe: commands on fd 3, answers on fd 4), so a
// test can click, read the DOM and take screenshots with no library and no
// open port.
type cdpBrowser struct {
	w       io.WriteCloser
	out     *nodetest.Logs
	mu      sync.Mutex
	next    int
	pending map[int]chan cdpReply
	closed  chan struct{}
}

type cdpReply struct {
	ID     int             `json:"id"`
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// startCDP starts Chromium; extra are more flags. It stops at cleanup.
func startCDP(t *testing.T, bin string, extra ...string) *cdpBrowser {
	t.Helper()
	toChrome, fromTest, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	toTest, fromChrome, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--disable-extensions", "--no-default-browser-check",
		"--disable-features=HttpsUpgrades", "--hide-scrollbars",
		"--user-data-dir=" + t.TempDir(), "--remote-debugging-pipe", "--window-size=1280,1040",
	}, extra...)
	cmd := exec.Command(bin, append(args, "about:blank")...)
	b := &cdpBrowser{w: fromTest, out: &nodetest.Logs{}, pending: map[int]chan cdpReply{}, closed: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = b.out, b.out
	cmd.ExtraFiles = []*os.File{toChrome, fromChrome} // fd 3 and fd 4
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	toChrome.Close()
	fromChrome.Close()
	go b.read(toTest)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		fromTest.Close()
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		toTest.Close()
		if t.Failed() {
			t.Logf("chromium output:\n%s", tail(b.out.String(), 4000))
		}
	})
	return b
}

func (b *cdpBrowser) read(r io.Reader) {
	defer close(b.closed)
	br := bufio.NewReader(r)
	for {
		msg, err := br.ReadBytes(0)
		if err != nil {
			return
		}
		var rep cdpReply
		if json.Unmarshal(msg[:len(msg)-1], &rep) != nil || rep.ID == 0 {
			continue // an event
		}
		b.mu.Lock()
		ch := b.pending[rep.ID]
		delete(b.pending, rep.ID)
		b.mu.Unlock()
		if ch != nil {
			ch <- rep
		}
	}
}

// call sends method to the browser (session "") or a page's session and
// decodes the result into result, when not nil.
func (b *cdpBrowser) call(session, method string, params, result any) error {
	b.mu.Lock()
	b.next++
	id := b.next
	ch := make(chan cdpReply, 1)
	b.pending[id] = ch
	b.mu.Unlock()
	msg := map[string]any{"id": id, "method": method, "params": params}
	if params == nil {
		msg["params"] = map[string]any{}
	}
	if session != "" {
		msg["sessionId"] = session
	}
	data, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	if _, err := b.w.Write(append(data, 0)); err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	select {
	case rep := <-ch:
		if rep.Error != nil {
			return fmt.Errorf("%s: %s", method, rep.Error.Message)
		}
		if result != nil {
			return json.Unmarshal(rep.Result, result)
		}
		return nil
	case <-b.closed:
		return fmt.Errorf("%s: chromium closed the pipe", method)
	case <-time.After(30 * time.Second):
		return fmt.Errorf("%s: no answer within 30s", method)
	}
}

// cdpTab is one tab.
type cdpTab struct {
	b       *cdpBrowser
	session string
}

// open opens url in a new tab.
func (b *cdpBrowser) open(t *testing.T, url string) *cdpTab {
	t.Helper()
	var target struct{ TargetID string }
	if err := b.call("", "Target.createTarget", map[string]any{"url": url}, &target); err != nil {
		t.Fatal(err)
	}
	var att struct{ SessionID string }
	if err := b.call("", "Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}, &att); err != nil {
		t.Fatal(err)
	}
	return &cdpTab{b: b, session: att.SessionID}
}

// eval runs expr in the tab (awaiting a promise) and decodes its value.
func (tab *cdpTab) eval(expr string, v any) error {
	var res struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		Exception *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	err := tab.b.call(tab.session, "Runtime.evaluate", map[string]any{
		"expression": expr, "returnByValue": true, "awaitPromise": true}, &res)
	if err != nil {
		return err
	}
	if res.Exception != nil {
		return fmt.Errorf("%s: %s", res.Exception.Text, res.Exception.Exception.Description)
	}
	if v == nil || res.Result.Value == nil {
		return nil
	}
	return json.Unmarshal(res.Result.Value, v)
}

// waitTrue evaluates expr until it is true or within has passed.
func (tab *cdpTab) waitTrue(t *testing.T, what, expr string, within time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	var last error
	for {
		var ok bool
		if last = tab.eval(expr, &ok); last == nil && ok {
			return
		}
		select {
		case <-ctx.Done():
			var body string
			_ = tab.eval("document.body ? document.body.innerText : ''", &body)
			t.Fatalf("timed out waiting for %s (%v); the page says:\n%s", what, last, tail(body, 3000))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// screenshot returns the tab as a PNG.
func (tab *cdpTab) screenshot(t *testing.T) []byte {
	t.Helper()
	var shot struct{ Data []byte } // base64 in JSON decodes into []byte
	if err := tab.b.call(tab.session, "Page.captureScreenshot", map[string]any{"format": "png"}, &shot); err != nil {
		t.Fatal(err)
	}
	return shot.Data
}

//go:build unix

package main

import (
	"bufio"
	"crypto/rand"
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/internal/nodetest"
)

// A web page in a real browser cannot change the node or read its secrets:
// not by the requests a page may send anywhere without asking (a no-cors
// fetch, a form, a beacon), not by CORS, and not by DNS rebinding. Each
// refused request must reach the node and show up in
// potluck_api_refused_total, so a browser that silently sent nothing does not
// pass for a safe node.
func TestBrowserCannotChangeNode(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium not found: install Debian's chromium package (make deps does) to run the browser test")
	}
	nodetest.Binary(t) // build before the clocks below start

	t.Run("no CORS origin", func(t *testing.T) {
		b := startBrowserScene(t, chromium, false)
		cross := b.report(t, "cross-site")
		b.assertCrossSiteRefused(t, cross)
		for _, name := range []string{"cors-status", "cors-models"} {
			if r := cross.Results[name]; r.Error == "" || r.Text != "" {
				t.Errorf("%s: a page from another origin read %+v; want a network error", name, r)
			}
		}
		if strings.Contains(cross.raw, b.peerID) {
			t.Errorf("the cross-site page learned the peer id: %s", cross.raw)
		}
		b.assertRebindRefused(t, b.report(t, "rebind"))
		b.assertUnchanged(t)
	})

	t.Run("with CORS origin", func(t *testing.T) {
		b := startBrowserScene(t, chromium, true)
		cross := b.report(t, "cross-site")
		b.assertCrossSiteRefused(t, cross)
		var st struct {
			Name   string `json:"name"`
			PeerID string `json:"peer_id"`
		}
		if r := cross.Results["cors-status"]; r.Status != http.StatusOK || json.Unmarshal([]byte(r.Text), &st) != nil ||
			st.Name != browserNodeName || st.PeerID != b.peerID {
			t.Errorf("cors-status: %+v; want the node's status, readable by the --cors-origin page", r)
		}
		var models struct {
			Object string `json:"object"`
		}
		if r := cross.Results["cors-models"]; r.Status != http.StatusOK || json.Unmarshal([]byte(r.Text), &models) != nil || models.Object != "list" {
			t.Errorf("cors-models: %+v; want the model list, readable by the --cors-origin page", r)
		}
		b.assertRebindRefused(t, b.report(t, "rebind"))
		b.assertUnchanged(t)
	})
}

const browserNodeName = "browser-target"

// wantRefused is what the pages' requests must add to
// potluck_api_refused_total at least: the cross-site page sends 8 requests
// to admin endpoints (a preflight counts; the request it guards is never
// sent), the rebinding page 5 (and perhaps a favicon).
var wantRefused = map[string]float64{"origin": 8, "host": 5}

// browserScene is one node, an attacker's site on another loopback origin,
// a proxy that plays DNS rebinding, and Chromium visiting the site.
type browserScene struct {
	node     *proc
	dataDir  string
	settings []byte // settings.json before the attack
	token    string
	peerID   string
	reports  map[string]pageReport
	refused  map[string]float64 // refused-counter deltas over the attack
	chromium *nodetest.Logs
}

// startBrowserScene runs the whole attack and returns once every page has
// reported and the node has counted the refusals the pages must cause.
func startBrowserScene(t *testing.T, chromium string, corsOrigin bool) *browserScene {
	t.Helper()
	start := time.Now()
	// The attacker's origin: another loopback address (another site), or
	// another port where the system has no 127.0.0.2 (the same site, but
	// another origin).
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { ln.Close() })
	origin := "http://" + ln.Addr().String()

	b := &browserScene{dataDir: t.TempDir()}
	args := []string{"--name", browserNodeName, "--data-dir", b.dataDir,
		"--no-dht", "--no-mdns", "--p2p-listen", "/ip4/127.0.0.1/tcp/0"}
	if corsOrigin {
		args = append(args, "--cors-origin", origin)
	}
	b.node = startPotluckEnv(t, []string{"POTLUCK_P2P_TOKEN=" + newToken(t)}, args...)
	b.peerID = b.node.meshStatus(t).PeerID
	b.settings = waitSettings(t, b.dataDir)
	if b.token, err = b.node.inviteToken(); err != nil {
		t.Fatal(err)
	}
	before := b.node.refusedCounts(t)

	api, err := url.Parse(b.node.API)
	if err != nil {
		t.Fatal(err)
	}
	site := &attackSite{
		page: attackPage{
			API:           b.node.API,
			AttackerToken: newToken(t),
			Rebind:        "http://rebind.test:" + api.Port() + "/",
			Report:        "http://report.test/report",
			Nonce:         rand.Text(),
		},
		reports: make(chan pageReport, 4),
	}
	srv := httptest.NewUnstartedServer(site)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	b.chromium = &nodetest.Logs{}
	proxy := httptest.NewServer(rebindProxy("rebind.test:"+api.Port(), api, site, b.chromium))
	t.Cleanup(proxy.Close)
	stop := runChromium(t, chromium, proxy.URL, origin+"/", b.chromium)
	b.reports = site.collect(t, []string{"cross-site", "rebind"}, 30*time.Second, b.chromium)

	b.refused = b.node.waitRefused(t, before, wantRefused, 10*time.Second)
	stop()
	t.Logf("scene took %s; refused by reason: %v", time.Since(start).Round(time.Millisecond), b.refused)
	return b
}

// report is the page's report, logged and checked for the invite token.
func (b *browserScene) report(t *testing.T, page string) pageReport {
	t.Helper()
	r := b.reports[page]
	for _, name := range slices.Sorted(maps.Keys(r.Results)) {
		t.Logf("%s %s: %s", page, name, r.Results[name])
	}
	if strings.Contains(r.raw, b.token) {
		t.Errorf("the %s page read the invite token: %s", page, r.raw)
	}
	return r
}

// assertCrossSiteRefused checks what the page from another origin got from
// the admin endpoints: nothing it can read, whatever the CORS setting.
func (b *browserScene) assertCrossSiteRefused(t *testing.T, r pageReport) {
	t.Helper()
	if c := r.Results["control"]; c.Status != http.StatusOK || strings.TrimSpace(c.Text) == "" || !strings.Contains(r.raw, c.Text) {
		t.Fatalf("positive control: %s; the page's JavaScript did not run as expected\nchromium output:\n%s", c, tail(b.chromium.String(), 8000))
	}
	for _, name := range []string{"nocors-join", "nocors-token"} {
		if a := r.Results[name]; a.Type != "opaque" || a.Text != "" {
			t.Errorf("%s: %s; want an opaque response", name, a)
		}
	}
	if a := r.Results["form-share"]; !a.Loaded || a.Text != "" || a.Error == "" {
		t.Errorf("form-share: %s; want a frame the page cannot read", a)
	}
	for _, name := range []string{"cors-token", "json-join", "json-share"} {
		if a := r.Results[name]; a.Error == "" || a.Text != "" {
			t.Errorf("%s: %s; want a network error", name, a)
		}
	}
}

// assertRebindRefused checks that the rebinding page, same-origin with the
// API under another name, got a 403 for everything.
func (b *browserScene) assertRebindRefused(t *testing.T, r pageReport) {
	t.Helper()
	for _, name := range []string{"token", "join", "share", "leave", "status"} {
		a := r.Results[name]
		var e struct{ Error struct{ Message string } }
		if a.Status != http.StatusForbidden || json.Unmarshal([]byte(a.Text), &e) != nil || !strings.Contains(e.Error.Message, "answers only to") {
			t.Errorf("rebind %s: %s; want a 403 about the host name", name, a)
		}
	}
	if strings.Contains(r.raw, b.peerID) {
		t.Errorf("the rebinding page learned the peer id: %s", r.raw)
	}
}

// assertUnchanged checks that the node is where it was before the attack.
func (b *browserScene) assertUnchanged(t *testing.T) {
	t.Helper()
	if after, err := os.ReadFile(filepath.Join(b.dataDir, "settings.json")); err != nil || string(after) != string(b.settings) {
		t.Errorf("settings.json changed (%v):\nbefore %s\nafter  %s", err, b.settings, after)
	}
	if tok, err := b.node.inviteToken(); err != nil || tok != b.token {
		t.Errorf("the invite token changed (%v)", err)
	}
	var st meshStatus
	if err := nodetest.GetJSON(b.node.API+"/api/status", &st); err != nil {
		t.Error(err)
	} else if !st.InMesh || st.PeerID != b.peerID || st.Share != "off" {
		t.Errorf("after the attack: in_mesh=%v peer_id=%s share=%q; want in_mesh, %s, off", st.InMesh, st.PeerID, st.Share, b.peerID)
	}
	for reason, n := range wantRefused {
		if b.refused[reason] < n {
			t.Errorf("refused by reason %v, want at least %v: some of the browser's requests did not reach the node, or were not refused", b.refused, wantRefused)
			break
		}
	}
	if t.Failed() {
		t.Logf("chromium output:\n%s", tail(b.chromium.String(), 8000))
	}
}

// waitSettings waits for the node to save the network it joined, which it
// does a moment after it reports in_mesh, and returns settings.json.
func waitSettings(t *testing.T, dir string) []byte {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		data, err := os.ReadFile(filepath.Join(dir, "settings.json"))
		var s struct{ Token string }
		if err == nil && json.Unmarshal(data, &s) == nil && s.Token != "" {
			return data
		}
		if time.Now().After(deadline) {
			t.Fatalf("settings.json holds no token 10s after joining: %v %s", err, data)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// inviteToken reads the token as a local client may: JSON, no Origin.
func (p *proc) inviteToken() (string, error) {
	var tok struct{ Token string }
	if err := adminGetJSON(p.API+"/api/token", &tok); err != nil {
		return "", err
	}
	if tok.Token == "" {
		return "", fmt.Errorf("GET /api/token: no token")
	}
	return tok.Token, nil
}

// refusedCounts reads potluck_api_refused_total by reason.
func (p *proc) refusedCounts(t *testing.T) map[string]float64 {
	t.Helper()
	resp, err := http.Get(p.API + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	counts := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), `potluck_api_refused_total{reason="`)
		if !ok {
			continue
		}
		reason, value, ok := strings.Cut(rest, `"} `)
		n, err := strconv.ParseFloat(value, 64)
		if !ok || err != nil {
			t.Fatalf("bad metric line %q", sc.Text())
		}
		counts[reason] = n
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return counts
}

// waitRefused polls /metrics until the refused counters have grown by at
// least want since before, or within has passed, and returns the growth.
func (p *proc) waitRefused(t *testing.T, before, want map[string]float64, within time.Duration) map[string]float64 {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		delta := map[string]float64{}
		for reason, n := range p.refusedCounts(t) {
			if d := n - before[reason]; d != 0 {
				delta[reason] = d
			}
		}
		done := true
		for reason, n := range want {
			done = done && delta[reason] >= n
		}
		if done || time.Now().After(deadline) {
			return delta
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// attempt is what a page got from one request.
type attempt struct {
	Type   string `json:"type,omitempty"` // fetch's Response.type: basic, cors, opaque
	Status int    `json:"status,omitempty"`
	Text   string `json:"text,omitempty"`
	Error  string `json:"error,omitempty"`
	Queued bool   `json:"queued,omitempty"` // sendBeacon's answer
	Loaded bool   `json:"loaded,omitempty"` // the form's target frame loaded
}

func (a attempt) String() string {
	s := fmt.Sprintf("type=%q status=%d", a.Type, a.Status)
	if a.Queued || a.Loaded {
		s += fmt.Sprintf(" queued=%v loaded=%v", a.Queued, a.Loaded)
	}
	if a.Error != "" {
		s += " error=" + strconv.Quote(a.Error)
	}
	if len(a.Text) > 160 {
		return s + " text=" + strconv.Quote(a.Text[:160]+"…")
	}
	return s + " text=" + strconv.Quote(a.Text)
}

// pageReport is what a page sent to /report.
type pageReport struct {
	Page    string             `json:"page"`
	Failed  string             `json:"failed"`
	Results map[string]attempt `json:"results"`
	raw     string
}

// attackPage is what the attacker's pages are made of.
type attackPage struct {
	API           string // the node's API, as the cross-site page calls it
	AttackerToken string // a real token of the attacker's network
	Rebind        string // the rebinding page: the API's port under the attacker's name
	Report        string // where the rebinding page reports, through the proxy
	Nonce         string // the positive control's answer
}

// attackSite is the attacker's web server.
type attackSite struct {
	page    attackPage
	reports chan pageReport
}

func (s *attackSite) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/":
		s.render(w, "cross-site")
	case "/blank":
		io.WriteString(w, "<!doctype html><title>blank</title>")
	case "/control":
		io.WriteString(w, s.page.Nonce)
	case "/report":
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		rep := pageReport{raw: string(body)}
		if err == nil {
			err = json.Unmarshal(body, &rep)
		}
		if err != nil {
			rep.Failed = fmt.Sprintf("unreadable report (%v): %s", err, body)
		}
		select {
		case s.reports <- rep:
		default:
		}
	default:
		http.NotFound(w, r)
	}
}

func (s *attackSite) render(w http.ResponseWriter, name string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := attackPages.ExecuteTemplate(w, name, s.page); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}
}

// collect waits for a report from each page.
func (s *attackSite) collect(t *testing.T, pages []string, within time.Duration, chromium *nodetest.Logs) map[string]pageReport {
	t.Helper()
	got := map[string]pageReport{}
	timeout := time.After(within)
	for len(got) < len(pages) {
		select {
		case r := <-s.reports:
			if r.Failed != "" {
				t.Fatalf("the %s page failed: %s\nchromium output:\n%s", r.Page, r.Failed, tail(chromium.String(), 8000))
			}
			got[r.Page] = r
		case <-timeout:
			t.Fatalf("reports from %v, want %v within %s\nchromium output:\n%s", slices.Sorted(maps.Keys(got)), pages, within, tail(chromium.String(), 8000))
		}
	}
	return got
}

// rebindProxy is Chromium's proxy. It plays DNS rebinding for rebindHost,
// a name that first pointed at the attacker (the proxy serves the
// attacker's page at /) and then at 127.0.0.1 (every other request goes to
// the API, still addressed to rebindHost, as after a real rebinding). It
// also carries the rebinding page's report to the attacker, and answers
// anything else Chromium asks for (its own update checks) with a 502, noted
// in log: nothing leaves this machine.
func rebindProxy(rebindHost string, api *url.URL, site *attackSite, log io.Writer) http.Handler {
	fwd := &httputil.ReverseProxy{
		// Rewrite adds no X-Forwarded-For: the API sees a local client.
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(api)
			pr.Out.Host = pr.In.Host
		},
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Host == rebindHost && r.URL.Path == "/":
			site.render(w, "rebind")
		case r.Host == rebindHost:
			fwd.ServeHTTP(w, r)
		case r.Host == "report.test" && r.URL.Path == "/report":
			site.ServeHTTP(w, r)
		default:
			fmt.Fprintf(log, "proxy: refused %s %s\n", r.Method, r.URL)
			http.Error(w, "this proxy reaches no other host", http.StatusBadGateway)
		}
	})
}

// runChromium opens url in a headless Chromium of its own profile and
// returns a function that stops it (also run at cleanup).
func runChromium(t *testing.T, bin, proxy, url string, out *nodetest.Logs) (stop func()) {
	t.Helper()
	cmd := exec.Command(bin,
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--disable-extensions", "--no-default-browser-check",
		"--user-data-dir="+t.TempDir(),
		"--proxy-server="+proxy,
		"--disable-features=HttpsUpgrades",
		"--enable-logging=stderr", "--v=0",
		url)
	cmd.Stdout, cmd.Stderr = out, out
	// Its own process group, so that its renderers stop with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			pgid := cmd.Process.Pid
			_ = syscall.Kill(-pgid, syscall.SIGTERM)
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				_ = syscall.Kill(-pgid, syscall.SIGKILL)
				<-done
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// attackPages are the attacker's two pages (testdata/attack.html.tmpl). The
// cross-site page tries every request a page may send to another origin,
// then moves on to the rebinding page, which is same-origin with the API
// under the attacker's name.
//
//go:embed testdata/attack.html.tmpl
var attackPagesText string

var attackPages = template.Must(template.New("").Parse(attackPagesText))

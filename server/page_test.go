package server_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/potluck-gpu/potluck/server"
)

// The web page takes no key (a browser cannot send one when it opens a
// URL), but keeps the Host rule, and other sites cannot load it.
func TestPageAccess(t *testing.T) {
	nav := map[string]string{"Sec-Fetch-Site": "none", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"}
	link := map[string]string{"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"}
	frame := map[string]string{"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "iframe"}
	fetchOther := map[string]string{"Sec-Fetch-Site": "same-site", "Sec-Fetch-Mode": "cors", "Sec-Fetch-Dest": "empty", "Origin": "http://127.0.0.1:9999"}
	script := map[string]string{"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Dest": "script"}
	own := map[string]string{"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Dest": "script"}
	cases := []accessCase{
		{name: "page", method: http.MethodGet, path: "/", hdr: nav, want: http.StatusOK},
		{name: "page head", method: http.MethodHead, path: "/", want: http.StatusOK},
		{name: "page by a link", method: http.MethodGet, path: "/", hdr: link, want: http.StatusOK},
		{name: "own script", method: http.MethodGet, path: "/ui/page.js", hdr: own, want: http.StatusOK},
		{name: "page in a frame", method: http.MethodGet, path: "/", hdr: frame, want: http.StatusForbidden},
		{name: "page fetched by another origin", method: http.MethodGet, path: "/", hdr: fetchOther, want: http.StatusForbidden},
		{name: "script for another site", method: http.MethodGet, path: "/ui/page.js", hdr: script, want: http.StatusForbidden},
		{name: "rebinding name", method: http.MethodGet, path: "/", host: "evil.test:8080", hdr: nav, want: http.StatusForbidden},
		{name: "post to the page", method: http.MethodPost, path: "/", want: http.StatusUnsupportedMediaType},
		{name: "preflight", method: http.MethodOptions, path: "/", hdr: map[string]string{"Origin": "http://evil.test", "Access-Control-Request-Method": "GET"}, want: http.StatusForbidden},
	}
	t.Run("loopback", func(t *testing.T) { runAccess(t, server.Config{Addr: "127.0.0.1:8080"}, cases) })
	t.Run("with a key", func(t *testing.T) {
		runAccess(t, server.Config{Addr: "0.0.0.0:8080", APIKey: "k"}, append(cases,
			accessCase{name: "status without the key", method: http.MethodGet, path: "/api/status", hdr: own, want: http.StatusUnauthorized}))
	})
}

func TestPageHeaders(t *testing.T) {
	s, err := server.New(server.Config{Addr: "127.0.0.1:8080"}, staticRouter{model: "m"}, &adminNode{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Host = "127.0.0.1:8080"
	req.RemoteAddr = "127.0.0.1:40000"
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	h := rec.Header()
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `<script src="/ui/page.js"`) {
		t.Fatalf("GET /: %d %.200s", rec.Code, rec.Body.String())
	}
	csp := h.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("Content-Security-Policy %q lacks %s", csp, want)
		}
	}
	if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("headers: %v", h)
	}
}

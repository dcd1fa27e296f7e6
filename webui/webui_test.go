package webui_test

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/potluck-gpu/potluck/webui"
)

func get(t *testing.T, method, path string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	webui.Handler().ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	return rec
}

func TestHandler(t *testing.T) {
	for _, tc := range []struct {
		method, path string
		code         int
		ctype        string
	}{
		{"GET", "/", 200, "text/html; charset=utf-8"},
		{"HEAD", "/", 200, "text/html; charset=utf-8"},
		{"GET", "/ui/page.js", 200, "text/javascript; charset=utf-8"},
		{"GET", "/ui/format.js", 200, "text/javascript; charset=utf-8"},
		{"GET", "/ui/page.css", 200, "text/css; charset=utf-8"},
		{"GET", "/ui/icon.svg", 200, "image/svg+xml"},
		{"GET", "/ui/", 404, ""},
		{"GET", "/ui/index.html", 404, ""},
		{"GET", "/ui/nothing", 404, ""},
		{"GET", "/ui/../webui.go", 404, ""},
		{"GET", "/ui//page.js", 404, ""},
		{"GET", "/other", 404, ""},
		{"POST", "/", 405, ""},
	} {
		rec := get(t, tc.method, tc.path)
		if rec.Code != tc.code {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, rec.Code, tc.code)
			continue
		}
		if tc.code != 200 {
			continue
		}
		h := rec.Header()
		if tc.ctype != "" && h.Get("Content-Type") != tc.ctype {
			t.Errorf("%s %s: Content-Type %q, want %q", tc.method, tc.path, h.Get("Content-Type"), tc.ctype)
		}
		if h.Get("Content-Security-Policy") != webui.Security || h.Get("X-Content-Type-Options") != "nosniff" || h.Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s %s: headers %v", tc.method, tc.path, h)
		}
	}
}

// The page loads nothing from elsewhere, and everything it names is there.
func TestFilesSelfContained(t *testing.T) {
	files := webui.Files()
	refs := regexp.MustCompile(`(?:src|href)="([^"]+)"`)
	index, err := fs.ReadFile(files, "index.html")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range refs.FindAllStringSubmatch(string(index), -1) {
		name, ok := strings.CutPrefix(m[1], webui.Prefix)
		if !ok {
			t.Errorf("index.html loads %q: every file must be under %s", m[1], webui.Prefix)
			continue
		}
		if rec := get(t, http.MethodGet, m[1]); rec.Code != http.StatusOK {
			t.Errorf("index.html loads %s (%s): %d", m[1], name, rec.Code)
		}
	}
	err = fs.WalkDir(files, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(files, path)
		if err != nil {
			return err
		}
		text := string(data)
		for _, bad := range []string{"http://", "https://", "//cdn", "@import", "<script>", " style=", "onclick=", "innerHTML", "eval("} {
			if strings.Contains(text, bad) && !(bad == "http://" && path == "icon.svg" && strings.Count(text, bad) == strings.Count(text, "http://www.w3.org/2000/svg")) {
				t.Errorf("%s holds %q: the page must load nothing from elsewhere and run no inline code", path, bad)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

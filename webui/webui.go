// Package webui is the node's web page: a read-only view of the pool (this
// node, its peers, the plan, recent requests) and a chat box, for machines
// with no desktop. Every file is embedded; the page loads nothing from
// elsewhere and talks only to the API that served it.
package webui

import (
	"embed"
	"io/fs"
	"net/http"
	"path"
	"strings"
)

// Prefix is where the page's files live; the page itself is at /.
const Prefix = "/ui/"

//go:embed static
var static embed.FS

// Files are the page's files: index.html and what it loads.
func Files() fs.FS {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree always holds static/
	}
	return sub
}

// Serves says whether path is the page or one of its files.
func Serves(p string) bool {
	return p == "/" || strings.HasPrefix(p, Prefix)
}

// Security is the policy the page runs under: its own scripts, styles and
// API only, no inline code, no plugins, no frames around it.
const Security = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Handler serves the page at / and its files under Prefix, with headers
// that keep other sites from framing it and browsers from guessing types.
// It answers GET and HEAD only.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "the page is read-only", http.StatusMethodNotAllowed)
			return
		}
		name := "index.html"
		if r.URL.Path != "/" {
			rest, ok := strings.CutPrefix(r.URL.Path, Prefix)
			if !ok || rest == "" || rest == "index.html" || path.Clean("/"+rest) != "/"+rest {
				http.NotFound(w, r)
				return
			}
			name = rest
		}
		if _, err := fs.Stat(Files(), name); err != nil {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h.Set("Content-Security-Policy", Security)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		// The files change with the binary: always revalidate.
		h.Set("Cache-Control", "no-cache")
		http.ServeFileFS(w, r, Files(), name)
	})
}

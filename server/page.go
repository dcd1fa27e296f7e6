package server

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/potluck-gpu/potluck/webui"
)

// pageRoutes serves the web page (package webui) at / and its files under
// webui.Prefix. They pass the same middleware as the API; access sends
// them to page.
func (s *Server) pageRoutes(e *gin.Engine) {
	h := gin.WrapH(webui.Handler())
	for _, path := range []string{"/", webui.Prefix + "*file"} {
		e.GET(path, h)
		e.HEAD(path, h)
	}
}

// isPage says whether a request asks for the web page or one of its files.
func isPage(r *http.Request) bool {
	return (r.Method == http.MethodGet || r.Method == http.MethodHead) && webui.Serves(r.URL.Path)
}

// page guards the web page's files. They hold no secret, so they need no
// key: a browser cannot send one when it opens a URL, and the page asks for
// the key itself when the API answers 401. What another site may not do is
// load them into its own page (a frame, a fetch, a script): only a person
// opening the page, by typing its address or following a link, gets it.
// The Host check has already run.
func (s *Server) page(c *gin.Context) {
	r := c.Request
	switch site := r.Header.Get("Sec-Fetch-Site"); site {
	case "", "none", "same-origin":
	default:
		if r.Header.Get("Sec-Fetch-Mode") != "navigate" || r.Header.Get("Sec-Fetch-Dest") != "document" {
			s.refuse(c, http.StatusForbidden, "origin", "the web page cannot be used by pages of other sites (Sec-Fetch-Site: "+site+"); open it in its own tab")
			return
		}
	}
	if o := r.Header.Get("Origin"); o != "" && o != "http://"+r.Host && o != "https://"+r.Host {
		s.refuse(c, http.StatusForbidden, "origin", "the web page cannot be used by pages of other sites")
		return
	}
	c.Next()
}

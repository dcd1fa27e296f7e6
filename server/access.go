package server

import (
	"crypto/subtle"
	"fmt"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
)

// Every request passes the same checks, in one place, before any handler
// runs. A route is one of four kinds:
//
//   - the OpenAI and Anthropic APIs (/v1/...) and the Ollama-compatible
//     API on its own listener: chat apps, browser pages from --cors-origin;
//   - read-only node endpoints (status, peers, plan, requests, members,
//     metrics): the same clients may read them;
//   - the web page (/ and its files under /ui/): a person's browser tab,
//     never another site's page (see page);
//   - admin endpoints: everything else. They change the node or reveal a
//     secret, so a web page can never reach them and a remote client needs
//     the admin key.
//
// A new endpoint is an admin endpoint unless it is added to readOnlyPaths
// (or, on the Ollama listener, is not a pull or a delete).
type routeKind int

const (
	routeAPI routeKind = iota
	routeRead
	routeAdmin
	routePage
)

// readOnlyPaths are the GET endpoints that reveal nothing secret.
var readOnlyPaths = map[string]bool{
	"/api/status":   true,
	"/api/peers":    true,
	"/api/plan":     true,
	"/api/requests": true,
	"/api/members":  true,
	"/api/models":   true,
	"/api/usage":    true,
	"/metrics":      true,
}

// kindOf classifies a request that came in on l. A CORS preflight is
// classified by the method it asks for.
func kindOf(r *http.Request, l listener) routeKind {
	method := r.Method
	if method == http.MethodOptions {
		if m := r.Header.Get("Access-Control-Request-Method"); m != "" {
			method = m
		}
	}
	if l.ollama {
		// Pulling downloads gigabytes, deleting loses them: only what may
		// change the node may.
		if r.URL.Path == "/api/pull" || r.URL.Path == "/api/delete" {
			return routeAdmin
		}
		return routeAPI
	}
	switch {
	case strings.HasPrefix(r.URL.Path, "/v1/"):
		return routeAPI
	case r.URL.Path == "/api/plan" && r.URL.Query().Get("model") != "":
		// Planning another model opens a file the caller names.
		return routeAdmin
	case (method == http.MethodGet || method == http.MethodHead) && readOnlyPaths[r.URL.Path]:
		return routeRead
	case isPage(r):
		return routePage
	}
	return routeAdmin
}

// refused counts requests turned away by the access checks, by reason.
func (s *Server) refuse(c *gin.Context, status int, reason, msg string) {
	s.metrics.refused.WithLabelValues(reason).Inc()
	s.log.Debug("request refused", "reason", reason, "method", c.Request.Method, "path", c.Request.URL.Path, "remote", c.Request.RemoteAddr)
	apiError(c, status, "invalid_request_error", msg)
	c.Abort()
}

// checkHost refuses requests addressed to a name this API does not answer
// to. A DNS-rebinding page reaches 127.0.0.1 under its own domain name, and
// its requests say so in Host.
func (s *Server) checkHost(c *gin.Context) {
	apiAddr := listenerOf(c).addr
	if s.hostAllowed(c.Request.Host, apiAddr) {
		c.Next()
		return
	}
	shown := c.Request.Host
	if len(shown) > 80 {
		shown = shown[:80] + "…"
	}
	s.refuse(c, http.StatusForbidden, "host", fmt.Sprintf(
		"this API answers only to %s (the request was addressed to %q); a web page under another name cannot use it. "+
			"If you reach Potluck by another name, start it with --allow-host NAME", s.hostList(apiAddr), shown))
}

// hostAllowed says whether a Host header names this API listening on
// apiAddr: a loopback name or address, the host of apiAddr (--api or
// --ollama-api), or a name given with --allow-host. When the API listens on
// every interface, any IP address is accepted: a page cannot rebind an
// address, only a name.
func (s *Server) hostAllowed(hostport, apiAddr string) bool {
	if hostport == "" {
		return false
	}
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	} else if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1]
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	if ip != nil && ip.IsLoopback() {
		return true
	}
	apiHost, _, _ := net.SplitHostPort(apiAddr)
	apiHost = strings.ToLower(apiHost)
	if host == apiHost {
		return true
	}
	if ip != nil {
		if a := net.ParseIP(apiHost); apiHost == "" || (a != nil && a.IsUnspecified()) {
			return true
		} else if a != nil && a.Equal(ip) {
			return true
		}
	}
	for _, h := range s.cfg.AllowedHosts {
		if strings.EqualFold(strings.TrimSuffix(h, "."), host) {
			return true
		}
	}
	return false
}

func (s *Server) hostList(apiAddr string) string {
	names := []string{"127.0.0.1", "localhost", "[::1]"}
	if h, _, err := net.SplitHostPort(apiAddr); err == nil && !isLoopbackHost(h) {
		if ip := net.ParseIP(h); h == "" || (ip != nil && ip.IsUnspecified()) {
			names = append(names, "this machine's IP addresses")
		} else {
			names = append(names, h)
		}
	}
	names = append(names, s.cfg.AllowedHosts...)
	return strings.Join(names, ", ")
}

// limit answers 503 past MaxConcurrent requests in flight, so that slow or
// abandoned clients cannot exhaust the node.
func (s *Server) limit(c *gin.Context) {
	select {
	case s.slots <- struct{}{}:
	default:
		c.Header("Retry-After", "1")
		s.metrics.refused.WithLabelValues("busy").Inc()
		apiError(c, http.StatusServiceUnavailable, "server_error",
			fmt.Sprintf("this node is handling %d requests already; try again in a moment", cap(s.slots)))
		c.Abort()
		return
	}
	defer func() { <-s.slots }()
	c.Next()
}

// access applies the rules of the request's kind: keys, and for admin
// endpoints the browser checks.
func (s *Server) access(c *gin.Context) {
	r := c.Request
	kind := kindOf(r, listenerOf(c))
	if kind == routeAdmin {
		s.admin(c)
		return
	}
	if kind == routePage {
		s.page(c)
		return
	}
	if s.cfg.CORSOrigin != "" {
		s.cors(c)
		if c.IsAborted() {
			return
		}
	}
	if crossSite(r) && (s.cfg.CORSOrigin == "" || r.Header.Get("Origin") != s.cfg.CORSOrigin) {
		// Another site's page: a browser would hide the answer, but the
		// request would still run (a no-cors POST to /v1 generates text).
		s.refuse(c, http.StatusForbidden, "origin", "this API does not answer pages of other sites; to let one web app use it, start potluck with --cors-origin ORIGIN")
		return
	}
	if r.Method == http.MethodOptions {
		c.Next()
		return
	}
	if s.cfg.APIKey != "" && !s.keyIs(r, s.cfg.APIKey) && !s.keyIs(r, s.cfg.AdminKey) {
		c.Header("WWW-Authenticate", `Bearer realm="potluck"`)
		s.refuse(c, http.StatusUnauthorized, "key", "missing or wrong API key: send Authorization: Bearer <key> (or x-api-key: <key>)")
		return
	}
	c.Next()
}

// admin guards the endpoints that change the node or reveal a secret.
//
// A web page can make a browser send simple cross-origin requests (a form,
// a no-cors fetch, a beacon) without the server's consent. None of them can
// carry Content-Type: application/json, and all of them carry an Origin or
// Sec-Fetch-Site header naming another site. So admin endpoints accept only
// JSON requests from no page at all, or from the API's own origin.
func (s *Server) admin(c *gin.Context) {
	r := c.Request
	if r.Method == http.MethodOptions {
		// No CORS headers: a browser will not send the real request.
		s.refuse(c, http.StatusForbidden, "origin", "admin endpoints cannot be used from web pages")
		return
	}
	if o := r.Header.Get("Origin"); o != "" && o != "http://"+r.Host && o != "https://"+r.Host {
		s.refuse(c, http.StatusForbidden, "origin",
			fmt.Sprintf("admin endpoints cannot be used from web pages (this request came from a page at %.80s)", o))
		return
	}
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		s.refuse(c, http.StatusForbidden, "origin", "admin endpoints cannot be used from web pages (Sec-Fetch-Site: "+site+")")
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		s.refuse(c, http.StatusUnsupportedMediaType, "content-type",
			"admin endpoints take only Content-Type: application/json, also for GET (e.g. curl -H 'Content-Type: application/json' ...)")
		return
	}
	if s.keyIs(r, s.cfg.AdminKey) {
		c.Next()
		return
	}
	if local, why := isLocalClient(r); !local {
		c.Header("WWW-Authenticate", `Bearer realm="potluck-admin"`)
		msg := "this endpoint changes the node: it answers clients on this machine, or clients that send the admin key (start potluck with --admin-key-file FILE and send Authorization: Bearer <admin key>)"
		if why != "" {
			msg += "; " + why
		}
		s.refuse(c, http.StatusForbidden, "admin", msg)
		return
	}
	c.Next()
}

// crossSite says whether a browser sent the request for a page of another
// site (fetch metadata), other than by the user following a link.
func crossSite(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
		return false
	}
	return r.Header.Get("Sec-Fetch-Mode") != "navigate" || r.Method != http.MethodGet
}

// isLocalClient says whether the client is on this machine. A request that
// came through a proxy (it says so in Forwarded or X-Forwarded-For) is not,
// even when the proxy runs here.
func isLocalClient(r *http.Request) (bool, string) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	ip := net.ParseIP(host)
	if err != nil || ip == nil || !ip.IsLoopback() {
		return false, ""
	}
	if r.Header.Get("Forwarded") != "" || r.Header.Get("X-Forwarded-For") != "" {
		return false, "the request came through a proxy, so its client is not known to be on this machine"
	}
	return true, ""
}

// keyIs says whether the request carries key (compared in constant time),
// as a Bearer token or, as Anthropic's clients send it, in x-api-key. An
// empty key matches nothing.
func (s *Server) keyIs(r *http.Request, key string) bool {
	if key == "" {
		return false
	}
	if got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok &&
		subtle.ConstantTimeCompare([]byte(got), []byte(key)) == 1 {
		return true
	}
	got := r.Header.Get("X-Api-Key")
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(key)) == 1
}

// cors lets the --cors-origin page use the OpenAI API and read status. It
// is never applied to admin endpoints.
func (s *Server) cors(c *gin.Context) {
	h := c.Writer.Header()
	h.Add("Vary", "Origin")
	if c.GetHeader("Origin") != s.cfg.CORSOrigin {
		return
	}
	h.Set("Access-Control-Allow-Origin", s.cfg.CORSOrigin)
	h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, X-Api-Key, Anthropic-Version, Anthropic-Beta, Anthropic-Dangerous-Direct-Browser-Access")
	h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
	h.Set("Access-Control-Max-Age", strconv.Itoa(600))
	if c.Request.Method == http.MethodOptions {
		c.AbortWithStatus(http.StatusNoContent)
	}
}

package app

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"time"
)

// servedProxy stands in front of the model's llama-server, for this node's
// API and for peers alike, so that the node knows how many requests its
// model is serving from every client: it publishes that number, and
// clients route by it.
type servedProxy struct {
	h        *modelHost
	addr     string
	inFlight atomic.Int64
}

// runServedProxy serves on loopback until ctx ends.
func (h *modelHost) runServedProxy(ctx context.Context) (*servedProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &servedProxy{h: h, addr: ln.Addr().String()}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			h.mu.Lock()
			port := h.port
			h.mu.Unlock()
			r.SetURL(&url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", port)})
			r.Out.Host = r.In.Host
		},
		FlushInterval: -1, // server-sent events go out as they come
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			w.Header().Set("Retry-After", "2")
			http.Error(w, `{"error":{"message":"the model is restarting","type":"server_error"}}`, http.StatusServiceUnavailable)
		},
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == modelInfoPath && r.Method == http.MethodGet {
				h.serveModelInfo(w)
				return
			}
			asker := h.n.asker(r.RemoteAddr)
			if h.n.overLimit(w, asker) {
				return
			}
			if !bufferBody(w, r) {
				return
			}
			p.inFlight.Add(1)
			defer p.inFlight.Add(-1)
			cw := &countingWriter{ResponseWriter: w}
			rp.ServeHTTP(cw, r)
			h.recordServed(asker, r.URL.Path, cw.status, &cw.tokens)
		}),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			h.n.log.Warn("model proxy", "err", err)
		}
	}()
	return p, nil
}

// maxServedBody bounds a request to the model; the API's own limit is
// lower, and a peer's is its own.
const maxServedBody = 64 << 20

// bufferBody reads r's body into memory before it goes on to llama-server.
// A body streamed through instead is still read by the proxy's transport
// when the answer begins, and net/http closes a handler's request body as
// its answer begins: the transport then fails its connection mid-answer.
// A body in memory also lets the transport send the request again where a
// kept-alive connection llama-server has just closed fails before any
// answer: nothing was generated then. It answers and returns false when
// the body cannot be read.
func bufferBody(w http.ResponseWriter, r *http.Request) bool {
	if r.Body == nil || r.Body == http.NoBody {
		return true
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxServedBody))
	if err != nil {
		status := http.StatusBadRequest
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			status = http.StatusRequestEntityTooLarge
		}
		http.Error(w, fmt.Sprintf(`{"error":{"message":%q,"type":"invalid_request_error"}}`, "the request body could not be read: "+err.Error()), status)
		return false
	}
	r.Body.Close()
	r.ContentLength = int64(len(body))
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	r.Header["X-Idempotency-Key"] = nil // marks it for resending, and is not sent
	return true
}

// servedInFlight is how many requests this node's model is serving now.
func (n *Node) servedInFlight() int {
	h := n.modelHost()
	if h == nil {
		return 0
	}
	h.mu.Lock()
	p := h.proxy
	h.mu.Unlock()
	if p == nil {
		return 0
	}
	return int(p.inFlight.Load())
}

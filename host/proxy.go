package host

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/potluck-gpu/potluck/engine"
	"github.com/potluck-gpu/potluck/ledger"
	"github.com/potluck-gpu/potluck/server"
)

// Serving is how the host's llama-server runs, and what it serves.
func (h *Host) Serving() engine.Serving {
	h.mu.Lock()
	info, name, alias := h.info, h.name, h.alias
	h.mu.Unlock()
	return engine.PlanServing(info, h.node.Embeddings(name, alias))
}

// APIModel is what the API says of the host's model besides its state:
// what it does, and what its file says.
func (h *Host) APIModel() server.Model {
	caps := h.Serving().Capabilities
	h.mu.Lock()
	defer h.mu.Unlock()
	m := server.Model{ID: h.alias, Capabilities: caps}
	if h.path == "" {
		return server.Model{ID: h.name} // not here yet: nothing known
	}
	m.Details = &server.ModelDetails{Arch: h.info.Arch, Params: h.info.Params, Quant: h.info.Quant,
		Bytes: h.info.Bytes, Context: h.info.Context}
	if len(h.shas) > 0 {
		m.Details.Digest = h.shas[0]
	}
	return m
}

// ModelInfoPath is where a node's model proxy says what its model does,
// for peers that route to it.
const ModelInfoPath = "/potluck/model"

// serveModelInfo answers ModelInfoPath on the model proxy.
func (h *Host) serveModelInfo(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(h.APIModel())
}

// servedProxy stands in front of the model's llama-server, for this node's
// API and for peers alike, so that the node knows how many requests its
// model is serving from every client: it publishes that number, and
// clients route by it.
type servedProxy struct {
	h        *Host
	addr     string
	inFlight atomic.Int64
	handler  http.Handler
}

// ServeHTTP answers a request for the model as its proxy does, with the
// caller's connection (r.RemoteAddr) telling who asks: for a door in
// front of several models. Before the proxy runs, it answers 503.
func (h *Host) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	p := h.proxy
	h.mu.Unlock()
	if p == nil {
		w.Header().Set("Retry-After", "2")
		server.WriteError(w, http.StatusServiceUnavailable, "server_error", nil, "the model is loading")
		return
	}
	p.handler.ServeHTTP(w, r)
}

// runServedProxy serves on loopback until ctx ends.
func (h *Host) runServedProxy(ctx context.Context) (*servedProxy, error) {
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
			server.WriteError(w, http.StatusServiceUnavailable, "server_error", nil, "the model is restarting")
		},
	}
	p.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == ModelInfoPath && r.Method == http.MethodGet {
			h.serveModelInfo(w)
			return
		}
		asker := h.asker(r.RemoteAddr)
		if h.overLimit(w, asker) {
			return
		}
		if !bufferBody(w, r) {
			return
		}
		p.inFlight.Add(1)
		defer p.inFlight.Add(-1)
		cw := &ledger.CountingWriter{ResponseWriter: w}
		rp.ServeHTTP(cw, r)
		h.record(asker, r.URL.Path, cw)
		h.measureDraft(cw.Tokens.Tail())
	})
	srv := &http.Server{
		Handler:           p.handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			h.log.Warn("model proxy", "err", err)
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
		server.WriteError(w, status, "invalid_request_error", nil, "the request body could not be read: "+err.Error())
		return false
	}
	r.Body.Close()
	r.ContentLength = int64(len(body))
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	r.Header["X-Idempotency-Key"] = nil // marks it for resending, and is not sent
	return true
}

// InFlight is how many requests the model is serving now.
func (h *Host) InFlight() int {
	h.mu.Lock()
	p := h.proxy
	h.mu.Unlock()
	if p == nil {
		return 0
	}
	return int(p.inFlight.Load())
}

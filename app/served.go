package app

import (
	"context"
	"errors"
	"fmt"
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

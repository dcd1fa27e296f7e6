// Package server is Potluck's HTTP face: the OpenAI-compatible API that chat
// apps talk to, and the node API that the tray and other tools use. It routes
// each request to a backend llama-server through a Router the caller
// provides, and knows nothing of how backends are started or found.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
)

// Model is one model the node can serve, locally or through peers.
type Model struct {
	ID    string   `json:"id"`
	Ready bool     `json:"ready"`
	State string   `json:"state"`
	Nodes []string `json:"nodes,omitempty"`
	// Capabilities say what the model does: "completion" (chat,
	// completions, responses, messages), "embedding", "rerank". Empty:
	// not known yet.
	Capabilities []string `json:"capabilities,omitempty"`
	// Details are what its GGUF file says, when known.
	Details *ModelDetails `json:"details,omitempty"`
	// Availability says where it is, and what a request for it takes:
	// one of the Avail values.
	Availability string `json:"availability,omitempty"`
	// ExpiresAt is when a model loaded on request unloads if no request
	// comes; nil: it stays.
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// Where a model is, as Model.Availability says.
const (
	AvailLoaded     = "loaded"      // loaded here, ready
	AvailLoading    = "loading"     // loading here
	AvailOnDisk     = "on-disk"     // on this machine's disk: a request loads it here
	AvailSplit      = "needs-split" // on this machine's disk, larger than it: a request splits it over workers
	AvailPeerLoaded = "peer-loaded" // loaded on a member that shares as a server
	AvailPeerDisk   = "peer-disk"   // on such a member's disk: a request has it load it
)

// A Loader is a Router that loads models on request and keeps them loaded
// for a while after their last request, as Ollama's keep_alive says.
type Loader interface {
	// KeepAlive loads model here if it is not loaded, and keeps it
	// loaded for d after its last request from now on (negative: until
	// unloaded; 0: unloaded once idle; nil: the node's default), as
	// each request says.
	KeepAlive(model string, d *time.Duration) error
	// Unload unloads model here now; false if it was not loaded here on
	// request.
	Unload(model string) bool
}

// ModelDetails describe a model's file.
type ModelDetails struct {
	Arch    string `json:"arch,omitempty"`    // e.g. "llama"
	Params  uint64 `json:"params,omitempty"`  // parameter count
	Quant   string `json:"quant,omitempty"`   // e.g. "Q4_K_M"
	Bytes   uint64 `json:"bytes,omitempty"`   // size of its files
	Context uint64 `json:"context,omitempty"` // training context, in tokens
	// Digest is the sha256 of its (first) file, when known.
	Digest string `json:"digest,omitempty"`
}

// Router knows which backends serve which model. It is the only way the
// server reaches llama.cpp.
type Router interface {
	Models() []Model
	// Backends returns the online backends that serve model, or an error:
	// *UnknownModelError, ErrLoading or ErrNoModel. An empty model name
	// means the only model there is.
	Backends(model string) ([]Backend, error)
}

// Errors a Router returns; the server turns them into OpenAI errors.
var (
	ErrLoading = errors.New("model is loading")
	ErrNoModel = errors.New("no model is being served: start the node with --model PATH")
	// ErrLoadingOnRequest is a model a request made load: requests wait
	// for it up to Config.LoadWait rather than WaitReady.
	ErrLoadingOnRequest = fmt.Errorf("%w on request", ErrLoading)
)

// UnknownModelError says which models exist instead.
type UnknownModelError struct {
	Model     string
	Available []string
}

func (e *UnknownModelError) Error() string {
	if len(e.Available) == 0 {
		return fmt.Sprintf("model %q not found: no models are available", e.Model)
	}
	return fmt.Sprintf("model %q not found; available: %s", e.Model, strings.Join(e.Available, ", "))
}

// Config is the server's configuration.
type Config struct {
	Addr       string // listen address, default 127.0.0.1:8080
	APIKey     string // required when Addr is not loopback; grants /v1 and the read-only endpoints
	AdminKey   string // grants the admin endpoints to remote clients; empty: loopback clients only
	CORSOrigin string // allowed browser origin for /v1 and reading status; empty: no CORS
	// OllamaAddr is where the Ollama-compatible API listens; empty: it
	// does not. It follows the same rules as Addr.
	OllamaAddr string
	// Version is the node's version, for /api/version.
	Version string
	// AllowedHosts are more names the API answers to (the Host header),
	// besides loopback names and addresses and the host of Addr.
	AllowedHosts []string
	MaxBody      int64 // request body limit, default 8 MiB
	// MaxConcurrent caps the requests handled at once; past it a request
	// gets a 503 with Retry-After. Default 256.
	MaxConcurrent int

	Selector    Selector // default LeastBusy
	MaxAttempts int      // backends tried per request before giving up; default 3
	// WaitReady is how long a request waits for a model that is loading or
	// being re-planned before it gets a 503 with Retry-After.
	WaitReady time.Duration
	// LoadWait is how long a request waits for a model it made load
	// (ErrLoadingOnRequest) before a 503; 0: 5 minutes, as Ollama's.
	LoadWait time.Duration
	// OnRequest, when set, is told of every request served.
	OnRequest func(RequestRecord)
}

// Validate refuses configurations that would expose the API carelessly.
func (c Config) Validate() error {
	host, _, err := net.SplitHostPort(c.Addr)
	if err != nil {
		return fmt.Errorf("--api %q: want host:port, e.g. 127.0.0.1:8080", c.Addr)
	}
	if !isLoopbackHost(host) && c.APIKey == "" {
		return fmt.Errorf("--api %s listens beyond this machine: set --api-key-file FILE (or POTLUCK_API_KEY) so only clients with the key get in", c.Addr)
	}
	if c.OllamaAddr != "" {
		host, _, err := net.SplitHostPort(c.OllamaAddr)
		if err != nil {
			return fmt.Errorf("--ollama-api %q: want host:port, e.g. 127.0.0.1:11434", c.OllamaAddr)
		}
		if !isLoopbackHost(host) && c.APIKey == "" {
			return fmt.Errorf("--ollama-api %s listens beyond this machine: set --api-key-file FILE (or POTLUCK_API_KEY) so only clients with the key get in", c.OllamaAddr)
		}
	}
	if c.AdminKey != "" && c.AdminKey == c.APIKey {
		return errors.New("the admin key and the API key are the same: the admin key must be a different secret (it can change the node)")
	}
	return nil
}

func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Server is the HTTP server. Create it with New, then Run it.
type Server struct {
	cfg    Config
	router Router
	node   Node
	sel    Selector
	log    *slog.Logger
	engine *gin.Engine
	ollama *gin.Engine // the Ollama-compatible API; nil when off
	client *http.Client

	inflight inflight
	metrics  *metrics
	recent   recentRequests
	slots    chan struct{} // one per request being handled

	started    time.Time
	ready      chan struct{}
	addr       net.Addr
	ollamaAddr net.Addr
}

// New builds a server; it listens only in Run. node answers the node API.
func New(cfg Config, router Router, node Node, log *slog.Logger) (*Server, error) {
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:8080"
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = 8 << 20
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Selector == nil {
		cfg.Selector = LeastBusy{}
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 3
	}
	if cfg.MaxConcurrent <= 0 {
		cfg.MaxConcurrent = 256
	}
	if cfg.LoadWait <= 0 {
		cfg.LoadWait = 5 * time.Minute
	}
	gin.SetMode(gin.ReleaseMode)
	s := &Server{
		cfg: cfg, router: router, node: node, log: log, sel: cfg.Selector,
		client: &http.Client{Transport: &http.Transport{
			Proxy:               nil, // backends are local or tunnelled: never via a proxy
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     90 * time.Second,
		}},
		ready:   make(chan struct{}),
		slots:   make(chan struct{}, cfg.MaxConcurrent),
		started: time.Now().UTC().Truncate(time.Second),
	}
	s.metrics = newMetrics(s)
	s.engine = s.routes()
	if cfg.OllamaAddr != "" {
		s.ollama = s.ollamaRoutes()
	}
	return s, nil
}

// Handler exposes the HTTP handler, for tests and embedding.
func (s *Server) Handler() http.Handler { return s.engine }

// OllamaHandler exposes the Ollama-compatible API's handler; nil when
// Config.OllamaAddr is empty.
func (s *Server) OllamaHandler() http.Handler {
	if s.ollama == nil {
		return nil
	}
	return s.ollama
}

// Up waits until the server is listening and returns its address.
func (s *Server) Up(ctx context.Context) (net.Addr, error) {
	select {
	case <-s.ready:
		return s.addr, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Addr returns the listening address, or nil before the server listens.
func (s *Server) Addr() net.Addr {
	select {
	case <-s.ready:
		return s.addr
	default:
		return nil
	}
}

// OllamaAddr returns where the Ollama-compatible API listens, or nil.
func (s *Server) OllamaAddr() net.Addr {
	select {
	case <-s.ready:
		return s.ollamaAddr
	default:
		return nil
	}
}

// Run listens and serves until ctx ends, then shuts down gracefully.
func (s *Server) Run(ctx context.Context) error {
	l, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("API listen on %s: %w (is another potluck running? choose another --api port)", s.cfg.Addr, err)
	}
	servers := []*http.Server{s.httpServer(ctx, s.engine)}
	listeners := []net.Listener{l}
	if s.ollama != nil {
		ol, err := net.Listen("tcp", s.cfg.OllamaAddr)
		if err != nil {
			l.Close()
			return fmt.Errorf("Ollama API listen on %s: %w (Ollama itself may be running there: stop it, or give --ollama-api another address such as 127.0.0.1:11435)", s.cfg.OllamaAddr, err)
		}
		s.ollamaAddr = ol.Addr()
		servers = append(servers, s.httpServer(ctx, s.ollama))
		listeners = append(listeners, ol)
	}
	s.addr = l.Addr()
	close(s.ready)
	s.log.Info("API listening", "addr", "http://"+l.Addr().String()+"/v1")
	if s.ollamaAddr != nil {
		s.log.Info("Ollama API listening", "addr", "http://"+s.ollamaAddr.String())
	}
	errc := make(chan error, len(servers))
	for i, hs := range servers {
		go func() { errc <- hs.Serve(listeners[i]) }()
	}
	var first error
	select {
	case first = <-errc:
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, hs := range servers {
		if err := hs.Shutdown(shutCtx); err != nil {
			hs.Close()
		}
	}
	for range len(servers) - btoi(first != nil) {
		<-errc
	}
	s.client.CloseIdleConnections()
	if errors.Is(first, http.ErrServerClosed) {
		first = nil
	}
	return first
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// httpServer serves h with the limits every listener has.
func (s *Server) httpServer(ctx context.Context, h http.Handler) *http.Server {
	return &http.Server{
		Handler: h,
		// Slow or idle clients cannot hold connections open: headers
		// must arrive within ReadHeaderTimeout and an idle keep-alive
		// connection is closed after IdleTimeout. There is no overall
		// write timeout, as a streamed answer may take minutes.
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
}

func (s *Server) routes() *gin.Engine {
	e := gin.New()
	s.middleware(e, listener{addr: s.cfg.Addr})
	e.NoRoute(func(c *gin.Context) {
		apiError(c, http.StatusNotFound, "invalid_request_error", fmt.Sprintf("no route for %s %s", c.Request.Method, c.Request.URL.Path))
	})
	e.GET("/metrics", gin.WrapH(s.metrics.handler()))
	s.pageRoutes(e)
	s.nodeRoutes(e.Group("/api"))
	v1 := e.Group("/v1")
	v1.GET("/models", s.models)
	// Every route of llama-server's that names a model goes to a backend
	// of that model, as it is.
	for _, path := range []string{
		"/completions", "/chat/completions", "/responses", // OpenAI
		"/messages", "/messages/count_tokens", // Anthropic
		"/embeddings", "/rerank", "/reranking",
	} {
		v1.POST(path, s.proxy)
	}
	return e
}

// listener is what the middleware of one listener knows of it.
type listener struct {
	addr    string  // its --api or --ollama-api address
	dialect dialect // the API it speaks; errors take its shape
	ollama  bool
}

// middleware installs what every request of a listener passes through:
// panic recovery, the request log, and the access checks.
func (s *Server) middleware(e *gin.Engine, l listener) {
	e.Use(func(c *gin.Context) {
		c.Set(listenerKey, l)
		c.Next()
	})
	e.Use(gin.CustomRecoveryWithWriter(nil, func(c *gin.Context, rec any) {
		s.log.Error("handler panic", "path", c.Request.URL.Path, "panic", rec)
		apiError(c, http.StatusInternalServerError, "server_error", "internal error")
	}))
	e.Use(s.logRequests)
	e.Use(s.checkHost, s.limit, s.access)
}

func (s *Server) logRequests(c *gin.Context) {
	start := time.Now()
	c.Next()
	// The path only: query strings may carry secrets.
	s.log.Debug("request", "method", c.Request.Method, "path", c.Request.URL.Path,
		"status", c.Writer.Status(), "dur", time.Since(start).Round(time.Microsecond))
}

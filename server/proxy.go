package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/potluck-gpu/potluck/internal/ctxtime"
	"github.com/potluck-gpu/potluck/ledger"
)

// hopHeaders are not forwarded in either direction.
var hopHeaders = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade", "Te", "Trailer", "Content-Length"}

// openAIRequest is the part of a request body the server looks at; the body
// itself is forwarded unchanged.
type openAIRequest struct {
	Model     string `json:"model"`
	Stream    bool   `json:"stream"`
	MaxTokens *int   `json:"max_tokens"`
}

// models lists the models in OpenAI's shape, with the fields Anthropic's
// adds (type, display_name, created_at, has_more), so that the clients of
// both can list them.
func (s *Server) models(c *gin.Context) {
	type entry struct {
		ID          string `json:"id"`
		Object      string `json:"object"`
		Created     int64  `json:"created"`
		OwnedBy     string `json:"owned_by"`
		Type        string `json:"type"`
		DisplayName string `json:"display_name"`
		CreatedAt   string `json:"created_at"`
		Potluck     Model  `json:"potluck"`
	}
	data := []entry{}
	for _, m := range s.router.Models() {
		data = append(data, entry{ID: m.ID, Object: "model", Created: s.started.Unix(), OwnedBy: "potluck",
			Type: "model", DisplayName: m.ID, CreatedAt: s.started.Format(time.RFC3339), Potluck: m})
	}
	list := gin.H{"object": "list", "data": data, "has_more": false}
	if len(data) > 0 {
		list["first_id"], list["last_id"] = data[0].ID, data[len(data)-1].ID
	}
	c.JSON(http.StatusOK, list)
}

// proxy forwards a request of the OpenAI or Anthropic API, unchanged, to a
// backend of the model it names.
func (s *Server) proxy(c *gin.Context) {
	start := time.Now()
	body, ok := s.readBody(c)
	if !ok {
		return
	}
	if !validRequest(c, body) {
		return
	}
	var req openAIRequest
	if !decodeJSON(c, body, &req) {
		return
	}
	if req.MaxTokens != nil && *req.MaxTokens < 0 {
		apiError(c, http.StatusBadRequest, "invalid_request_error", "max_tokens must not be negative")
		return
	}
	var out responder = passthrough{}
	switch {
	case dialectOf(c) == dialectAnthropic:
		out = anthropicResponder{model: req.Model}
	case c.Request.URL.Path == "/v1/responses":
		out = newResponsesResponder(body)
	case c.Request.URL.Path == "/v1/chat/completions":
		out = chatResponder{model: req.Model}
	}
	if !s.keepModel(c, req.Model, keepAlive{}) { // the default, as Ollama's OpenAI API
		return
	}
	body = rewriteRequest(c.Request.URL.Path, body)
	s.dispatch(c, upstream{path: c.Request.URL.Path, model: req.Model, body: body, out: out}, start)
}

// readBody reads the request body, within MaxBody; false when it answered
// an error.
func (s *Server) readBody(c *gin.Context) ([]byte, bool) {
	return readAtMost(c, s.cfg.MaxBody)
}

// upstream is a request for a backend: the path on llama-server, the
// model whose backends may serve it, the body, and how its answer reaches
// the client.
type upstream struct {
	path  string
	model string
	body  []byte
	out   responder
}

// responder writes a backend's answer to the client, in the client's API.
// first holds the answer's first bytes, already read from resp.Body.
type responder interface {
	respond(c *gin.Context, resp *http.Response, first []byte) delivery
}

// delivery is what a responder sent: the tokens generated, and whether the
// answer broke off.
type delivery struct {
	tokens int
	broken bool
	err    error // the backend's, when it broke off
}

// dispatch sends u to a backend chosen by the selector, failing over to the
// next one while nothing has reached the client yet.
func (s *Server) dispatch(c *gin.Context, u upstream, start time.Time) {
	backends, err := s.backends(c.Request.Context(), u.model)
	if err != nil {
		s.routeError(c, err)
		return
	}
	var tried []string
	var lastErr error
	deadline := start.Add(s.cfg.WaitReady)
	for attempt := 0; attempt < 3*s.cfg.MaxAttempts; attempt++ {
		if len(backends) == 0 {
			var unsupported *unsupportedError
			if errors.As(lastErr, &unsupported) {
				break // every backend said so: waiting will not change it
			}
			// Every backend failed before answering. A head whose worker
			// just died is re-planning: wait for it, within WaitReady.
			if time.Now().After(deadline) || !ctxtime.Sleep(c.Request.Context(), 200*time.Millisecond) {
				break
			}
			if backends, err = s.backends(c.Request.Context(), u.model); err != nil {
				lastErr = err
				break
			}
		}
		b, release := s.inflight.pick(backends, s.sel)
		backends = slices.DeleteFunc(backends, func(x Backend) bool { return x.Node == b.Node })
		tried = append(tried, b.Node)
		res := s.forward(c, b, u, start)
		release()
		if res.err == nil || res.started {
			return
		}
		lastErr = res.err
		if c.Request.Context().Err() != nil {
			return
		}
		s.log.Warn("backend failed before answering; trying the next", "node", b.Node, "err", res.err)
	}
	// Still loading or re-planning: worth a retry (503). Every backend
	// tried, and failing, for good: 502. None does what was asked: 501.
	status := http.StatusBadGateway
	msg := fmt.Sprintf("no backend could serve the request (tried %v): %v", tried, lastErr)
	var busy *busyError
	var unsupported *unsupportedError
	switch {
	case errors.As(lastErr, &unsupported):
		status, msg = http.StatusNotImplemented, unsupported.explain(u)
	case errors.Is(lastErr, ErrLoading) || errors.As(lastErr, &busy):
		status = http.StatusServiceUnavailable
		c.Header("Retry-After", "2")
	}
	apiError(c, status, "server_error", msg)
	s.record(RequestRecord{Time: start, Model: u.model, Status: status, Duration: time.Since(start)})
}

// backends asks the router, waiting up to WaitReady while the model loads.
func (s *Server) backends(ctx context.Context, model string) ([]Backend, error) {
	start := time.Now()
	for {
		bs, err := s.router.Backends(model)
		wait := s.cfg.WaitReady
		if errors.Is(err, ErrLoadingOnRequest) {
			wait = max(wait, s.cfg.LoadWait)
		}
		if err == nil || !errors.Is(err, ErrLoading) || time.Since(start) > wait {
			return bs, err
		}
		every := 100 * time.Millisecond
		if errors.Is(err, ErrLoadingOnRequest) {
			every = 20 * time.Millisecond // the request waits for nothing else
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(every):
		}
	}
}

func (s *Server) routeError(c *gin.Context, err error) {
	var unknown *UnknownModelError
	switch {
	case errors.As(err, &unknown):
		apiError(c, http.StatusNotFound, "invalid_request_error", unknown.Error())
	case errors.Is(err, ErrNoModel):
		apiError(c, http.StatusServiceUnavailable, "server_error", err.Error())
	default: // loading, re-planning: worth a retry
		c.Header("Retry-After", "5")
		apiError(c, http.StatusServiceUnavailable, "server_error", err.Error())
	}
}

type forwardResult struct {
	started bool  // bytes reached the client; no failover from here
	err     error // why the backend could not serve
}

// busyError is a backend that answered that it cannot serve yet.
type busyError struct{ error }

func (e *busyError) Unwrap() error { return e.error }

// unsupportedError is a backend whose llama-server does not serve the
// endpoint asked for (a 501): another backend of the model may, e.g. one
// started with --embeddings.
type unsupportedError struct {
	node, msg string
}

func (e *unsupportedError) Error() string { return e.node + ": " + e.msg }

// explain says what to do when no backend serves u's endpoint.
func (e *unsupportedError) explain(u upstream) string {
	model := u.model
	if model == "" {
		model = "the model"
	} else {
		model = fmt.Sprintf("model %q", model)
	}
	switch u.path {
	case "/v1/embeddings":
		return model + " is served without embeddings: serve an embedding model, or start the node that serves it with --embeddings"
	case "/v1/rerank", "/v1/reranking":
		return model + " is no reranker: serve a reranking model (its GGUF pools by rank) to use /v1/rerank"
	case "/infill":
		return fmt.Sprintf("%s cannot fill in the middle (a suffix): %s", model, e.msg)
	}
	return fmt.Sprintf("%s cannot serve %s (%s)", model, u.path, e.msg)
}

// retryable statuses mean the backend cannot serve right now, not that the
// request is wrong: another backend may.
func retryable(status int) bool {
	return status == http.StatusBadGateway || status == http.StatusServiceUnavailable || status == http.StatusGatewayTimeout
}

// forward sends u to one backend and hands the answer to u.out once its
// first bytes have arrived. The client going away cancels the upstream
// request.
func (s *Server) forward(c *gin.Context, b Backend, u upstream, start time.Time) forwardResult {
	s.metrics.inflight.WithLabelValues(b.Node).Inc()
	defer s.metrics.inflight.WithLabelValues(b.Node).Dec()

	req, err := http.NewRequestWithContext(c.Request.Context(), http.MethodPost, b.BaseURL+u.path, bytes.NewReader(u.body))
	if err != nil {
		return forwardResult{err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	// Let the transport resend the request when a kept-alive connection
	// turns out to be closed before any answer: nothing was generated then.
	// (A nil value marks it without sending the header.)
	req.Header["X-Idempotency-Key"] = nil
	if a := c.GetHeader("Accept"); a != "" {
		req.Header.Set("Accept", a)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		s.metrics.requests.WithLabelValues(b.Node, "error").Inc()
		return forwardResult{err: fmt.Errorf("backend unreachable: %w", err)}
	}
	defer resp.Body.Close()
	if retryable(resp.StatusCode) || resp.StatusCode == http.StatusNotImplemented {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		s.metrics.requests.WithLabelValues(b.Node, strconv.Itoa(resp.StatusCode)).Inc()
		if resp.StatusCode == http.StatusNotImplemented {
			return forwardResult{err: &unsupportedError{node: b.Node, msg: backendMessage(msg)}}
		}
		err := fmt.Errorf("backend answered %s: %s", resp.Status, bytes.TrimSpace(msg))
		if resp.StatusCode != http.StatusBadGateway {
			err = &busyError{err} // loading, or too busy: it may serve soon
		}
		return forwardResult{err: err}
	}

	// Read the first chunk before committing to this backend: a backend that
	// dies between its headers and its first byte is still failed over.
	buf := make([]byte, 32<<10)
	n, rerr := resp.Body.Read(buf)
	if n == 0 && rerr != nil && rerr != io.EOF {
		s.metrics.requests.WithLabelValues(b.Node, "error").Inc()
		return forwardResult{err: fmt.Errorf("backend broke before answering: %w", rerr)}
	}
	c.Writer.Header().Set("X-Potluck-Node", b.Node)
	d := u.out.respond(c, resp, buf[:n])
	if d.err != nil {
		s.log.Warn("backend stream broke", "node", b.Node, "err", d.err)
	}

	status := resp.StatusCode
	label := strconv.Itoa(status)
	if d.broken {
		label = "broken"
	}
	dur := time.Since(start)
	s.metrics.requests.WithLabelValues(b.Node, label).Inc()
	s.metrics.latency.WithLabelValues(b.Node).Observe(dur.Seconds())
	s.metrics.tokens.Add(float64(d.tokens))
	s.record(RequestRecord{Time: start, Model: u.model, Node: b.Node, Status: status, Duration: dur, Tokens: d.tokens})
	return forwardResult{started: true}
}

// send writes b to the client at once; false if the client is gone.
func send(c *gin.Context, b []byte) bool {
	if len(b) == 0 {
		return true
	}
	if _, err := c.Writer.Write(b); err != nil {
		return false
	}
	c.Writer.Flush()
	return true
}

// backendMessage is the message of a llama-server error body, or the body.
func backendMessage(body []byte) string {
	var e struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil && e.Error.Message != "" {
		return e.Error.Message
	}
	return string(bytes.TrimSpace(body))
}

// passthrough copies the backend's answer as it is, flushing each chunk so
// that server-sent events reach the client as they are produced.
type passthrough struct{}

func (passthrough) respond(c *gin.Context, resp *http.Response, first []byte) delivery {
	copyHeaders(c, resp)
	c.Status(resp.StatusCode)
	c.Writer.WriteHeaderNow()
	return copyStream(c, resp, first, nil)
}

// copyHeaders copies the backend's end-to-end headers to the client.
func copyHeaders(c *gin.Context, resp *http.Response) {
	h := c.Writer.Header()
	for k, vs := range resp.Header {
		if slices.Contains(hopHeaders, http.CanonicalHeaderKey(k)) {
			continue
		}
		h[k] = vs
	}
}

// copyStream copies first and then the rest of resp.Body to the client,
// through ed when it is not nil. The tokens are counted on the backend's
// bytes.
func copyStream(c *gin.Context, resp *http.Response, first []byte, ed *eventEditor) delivery {
	tokens := &ledger.Counter{}
	buf := make([]byte, 32<<10)
	chunk := first // may be longer than buf
	var rerr error
	var d delivery
	for {
		if len(chunk) > 0 {
			tokens.Write(chunk)
			out := chunk
			if ed != nil {
				out = ed.write(chunk)
			}
			if !send(c, out) {
				d.broken = true
				break
			}
		}
		if rerr != nil {
			if rerr != io.EOF && !errors.Is(rerr, context.Canceled) {
				// Not an answer cut short without a word, nor one made
				// to look finished: the client's SDK raises the error.
				d.broken, d.err = true, rerr
				send(c, brokeEvent(c, rerr))
				break
			}
			if ed != nil && !send(c, ed.end()) {
				d.broken = true
			}
			break
		}
		n, err := resp.Body.Read(buf)
		chunk, rerr = buf[:n], err
	}
	d.tokens = tokens.Out()
	return d
}

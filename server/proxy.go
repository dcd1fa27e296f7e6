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

func (s *Server) models(c *gin.Context) {
	type entry struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Created int64  `json:"created"`
		OwnedBy string `json:"owned_by"`
		Potluck Model  `json:"potluck"`
	}
	data := []entry{}
	now := time.Now().Unix()
	for _, m := range s.router.Models() {
		data = append(data, entry{ID: m.ID, Object: "model", Created: now, OwnedBy: "potluck", Potluck: m})
	}
	c.JSON(http.StatusOK, gin.H{"object": "list", "data": data})
}

// proxy validates an OpenAI request and streams it to a backend chosen by
// the selector, failing over to the next one while nothing has reached the
// client yet.
func (s *Server) proxy(c *gin.Context) {
	start := time.Now()
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, s.cfg.MaxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			openAIError(c, http.StatusRequestEntityTooLarge, "invalid_request_error", fmt.Sprintf("request body is larger than %d bytes", s.cfg.MaxBody))
			return
		}
		openAIError(c, http.StatusBadRequest, "invalid_request_error", "could not read the request body: "+err.Error())
		return
	}
	var req openAIRequest
	if err := json.Unmarshal(body, &req); err != nil {
		openAIError(c, http.StatusBadRequest, "invalid_request_error", "request body is not valid JSON: "+err.Error())
		return
	}
	if req.MaxTokens != nil && *req.MaxTokens < 0 {
		openAIError(c, http.StatusBadRequest, "invalid_request_error", "max_tokens must not be negative")
		return
	}
	backends, err := s.backends(c.Request.Context(), req.Model)
	if err != nil {
		s.routeError(c, err)
		return
	}
	var tried []string
	var lastErr error
	deadline := start.Add(s.cfg.WaitReady)
	for attempt := 0; attempt < 3*s.cfg.MaxAttempts; attempt++ {
		if len(backends) == 0 {
			// Every backend failed before answering. A head whose worker
			// just died is re-planning: wait for it, within WaitReady.
			if time.Now().After(deadline) || !sleepCtx(c.Request.Context(), 200*time.Millisecond) {
				break
			}
			if backends, err = s.backends(c.Request.Context(), req.Model); err != nil {
				lastErr = err
				break
			}
		}
		b, release := s.inflight.pick(backends, s.sel)
		backends = slices.DeleteFunc(backends, func(x Backend) bool { return x.Node == b.Node })
		tried = append(tried, b.Node)
		res := s.forward(c, b, body, req.Model, start)
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
	// tried, and failing, for good: 502.
	status := http.StatusBadGateway
	var busy *busyError
	if errors.Is(lastErr, ErrLoading) || errors.As(lastErr, &busy) {
		status = http.StatusServiceUnavailable
		c.Header("Retry-After", "2")
	}
	openAIError(c, status, "server_error", fmt.Sprintf("no backend could serve the request (tried %v): %v", tried, lastErr))
	s.record(RequestRecord{Time: start, Model: req.Model, Status: status, Duration: time.Since(start)})
}

// sleepCtx waits d; false if ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// backends asks the router, waiting up to WaitReady while the model loads.
func (s *Server) backends(ctx context.Context, model string) ([]Backend, error) {
	deadline := time.Now().Add(s.cfg.WaitReady)
	for {
		bs, err := s.router.Backends(model)
		if err == nil || !errors.Is(err, ErrLoading) || time.Now().After(deadline) {
			return bs, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (s *Server) routeError(c *gin.Context, err error) {
	var unknown *UnknownModelError
	switch {
	case errors.As(err, &unknown):
		openAIError(c, http.StatusNotFound, "invalid_request_error", unknown.Error())
	case errors.Is(err, ErrNoModel):
		openAIError(c, http.StatusServiceUnavailable, "server_error", err.Error())
	default: // loading, re-planning: worth a retry
		c.Header("Retry-After", "5")
		openAIError(c, http.StatusServiceUnavailable, "server_error", err.Error())
	}
}

type forwardResult struct {
	started bool  // bytes reached the client; no failover from here
	err     error // why the backend could not serve
}

// busyError is a backend that answered that it cannot serve yet.
type busyError struct{ error }

func (e *busyError) Unwrap() error { return e.error }

// retryable statuses mean the backend cannot serve right now, not that the
// request is wrong: another backend may.
func retryable(status int) bool {
	return status == http.StatusBadGateway || status == http.StatusServiceUnavailable || status == http.StatusGatewayTimeout
}

// forward sends body to one backend and copies the answer back, flushing each
// chunk so server-sent events reach the client as they are produced. The
// client going away cancels the upstream request.
func (s *Server) forward(c *gin.Context, b Backend, body []byte, model string, start time.Time) forwardResult {
	s.metrics.inflight.WithLabelValues(b.Node).Inc()
	defer s.metrics.inflight.WithLabelValues(b.Node).Dec()

	req, err := http.NewRequestWithContext(c.Request.Context(), http.MethodPost, b.BaseURL+c.Request.URL.Path, bytes.NewReader(body))
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
	if retryable(resp.StatusCode) {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		s.metrics.requests.WithLabelValues(b.Node, strconv.Itoa(resp.StatusCode)).Inc()
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

	h := c.Writer.Header()
	for k, vs := range resp.Header {
		if slices.Contains(hopHeaders, http.CanonicalHeaderKey(k)) {
			continue
		}
		h[k] = vs
	}
	h.Set("X-Potluck-Node", b.Node)
	c.Status(resp.StatusCode)
	c.Writer.WriteHeaderNow()

	tokens := newTokenCounter()
	broken := false
	for {
		if n > 0 {
			tokens.Write(buf[:n])
			if _, werr := c.Writer.Write(buf[:n]); werr != nil {
				broken = true
				break
			}
			c.Writer.Flush()
		}
		if rerr != nil {
			if rerr != io.EOF && !errors.Is(rerr, context.Canceled) {
				s.log.Warn("backend stream broke", "node", b.Node, "err", rerr)
				broken = true
			}
			break
		}
		n, rerr = resp.Body.Read(buf)
	}
	status := resp.StatusCode
	label := strconv.Itoa(status)
	if broken {
		label = "broken"
	}
	dur := time.Since(start)
	s.metrics.requests.WithLabelValues(b.Node, label).Inc()
	s.metrics.latency.WithLabelValues(b.Node).Observe(dur.Seconds())
	s.metrics.tokens.Add(float64(tokens.count()))
	s.record(RequestRecord{Time: start, Model: model, Node: b.Node, Status: status, Duration: dur, Tokens: tokens.count()})
	return forwardResult{started: true}
}

// tokenCounter estimates generated tokens from a response as it streams:
// one per server-sent event chunk, or the usage block of a plain answer.
type tokenCounter struct {
	chunks int
	tail   []byte
}

func newTokenCounter() *tokenCounter { return &tokenCounter{} }

var (
	dataPrefix = []byte("data: {")
	usageKey   = []byte(`"completion_tokens":`)
)

func (t *tokenCounter) Write(p []byte) {
	joined := append(t.tail, p...)
	t.chunks += bytes.Count(joined, dataPrefix) - bytes.Count(t.tail, dataPrefix)
	if len(joined) > 4096 {
		joined = joined[len(joined)-4096:]
	}
	t.tail = append(t.tail[:0], joined...)
}

func (t *tokenCounter) count() int {
	if i := bytes.LastIndex(t.tail, usageKey); i >= 0 && t.chunks == 0 {
		rest := t.tail[i+len(usageKey):]
		end := bytes.IndexAny(rest, ",}")
		if end > 0 {
			if n, err := strconv.Atoi(string(bytes.TrimSpace(rest[:end]))); err == nil {
				return n
			}
		}
	}
	if t.chunks > 2 { // the role chunk and the final chunk carry no token
		return t.chunks - 2
	}
	return 0
}

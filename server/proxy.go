package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
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

// proxy validates an OpenAI request and streams it to the chosen backend.
func (s *Server) proxy(c *gin.Context) {
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
	up, err := s.router.Route(req.Model)
	if err != nil {
		s.routeError(c, err)
		return
	}
	s.forward(c, up, body)
}

func (s *Server) routeError(c *gin.Context, err error) {
	var unknown *UnknownModelError
	switch {
	case errors.As(err, &unknown):
		openAIError(c, http.StatusNotFound, "invalid_request_error", unknown.Error())
	case errors.Is(err, ErrLoading):
		c.Header("Retry-After", "5")
		openAIError(c, http.StatusServiceUnavailable, "server_error", err.Error())
	case errors.Is(err, ErrNoModel):
		openAIError(c, http.StatusServiceUnavailable, "server_error", err.Error())
	default:
		c.Header("Retry-After", "5")
		openAIError(c, http.StatusServiceUnavailable, "server_error", err.Error())
	}
}

// forward sends body to the upstream and copies the answer back, flushing
// each chunk so server-sent events reach the client as they are produced.
// The client going away cancels the upstream request.
func (s *Server) forward(c *gin.Context, up Upstream, body []byte) {
	req, err := http.NewRequestWithContext(c.Request.Context(), http.MethodPost, up.BaseURL+c.Request.URL.Path, bytes.NewReader(body))
	if err != nil {
		openAIError(c, http.StatusInternalServerError, "server_error", err.Error())
		return
	}
	req.Header.Set("Content-Type", "application/json")
	if a := c.GetHeader("Accept"); a != "" {
		req.Header.Set("Accept", a)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		if c.Request.Context().Err() != nil {
			return // the client left
		}
		openAIError(c, http.StatusBadGateway, "server_error", "backend unreachable: "+err.Error())
		return
	}
	defer resp.Body.Close()
	h := c.Writer.Header()
	for k, vs := range resp.Header {
		if slices.Contains(hopHeaders, http.CanonicalHeaderKey(k)) {
			continue
		}
		h[k] = vs
	}
	if up.Node != "" {
		h.Set("X-Potluck-Node", up.Node)
	}
	c.Status(resp.StatusCode)
	c.Writer.WriteHeaderNow()
	buf := make([]byte, 32<<10)
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := c.Writer.Write(buf[:n]); werr != nil {
				return
			}
			c.Writer.Flush()
		}
		if rerr != nil {
			if rerr != io.EOF && c.Request.Context().Err() == nil {
				s.log.Warn("backend stream broke", "node", up.Node, "err", rerr)
			}
			return
		}
	}
}

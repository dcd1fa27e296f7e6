package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/potluck-gpu/potluck/hub"
	"github.com/potluck-gpu/potluck/library"
	"github.com/potluck-gpu/potluck/nodestate"
)

// Node is what the node API drives. The views it returns are rendered as
// JSON unchanged.
type Node interface {
	Status() nodestate.Status
	Peers() []nodestate.Peer
	Plan(model string) nodestate.PlanView
	Join(ctx context.Context, token string) error
	Leave(ctx context.Context) error
	// Share sets the share mode ("off", "worker", "server") and memory (a
	// size like "12GiB" or a byte count; empty: the default offer).
	Share(ctx context.Context, mode, memory string) error
	InviteToken() (string, error)
	// SetDevices chooses the devices the node serves with and lends
	// (llama.cpp's names); none: automatic.
	SetDevices(ctx context.Context, devices []string) error
	// SetLendTo chooses the members (names or peer ids) the node's shard
	// worker serves; none: every member.
	SetLendTo(ctx context.Context, who []string) error
	// Members lists the members of the network; RemoveMember removes
	// one by name or peer id (only the network's owner can).
	Members() nodestate.MembersView
	RemoveMember(ctx context.Context, who string) (nodestate.RemovalResult, error)
	// Library lists the models on this machine. Pull makes one
	// available, calling progress with Ollama-shaped steps, and returns
	// what it got.
	Library() nodestate.LibraryView
	Pull(ctx context.Context, ref string, progress func(hub.Progress)) (library.Model, error)
	// Usage is the pool's accounts: what this machine gave to and used
	// from each peer.
	Usage() nodestate.Usage
	// Serve serves the model name (a library name, a path or a
	// reference); "" serves none. embeddings, when set, turns embeddings
	// on or off for it (see PlanServing in the engine).
	Serve(ctx context.Context, model string, embeddings *bool) error
	// SetDraft chooses the draft model for speculative decoding: "auto",
	// "none", "ngram" (no draft model) or a model's name; the model served
	// restarts with it.
	SetDraft(ctx context.Context, choice string) error
	// DeleteModel removes a model from Potluck's own store and returns
	// it. A model that is not here is an error with NotFound() true; one
	// in another tool's store or a --models-dir, or the one being served,
	// is refused with an error whose Conflict() is true.
	DeleteModel(ctx context.Context, name string) (library.Model, error)
	Counters() Counters
	// Quit stops the node as the tray's Quit does: children stopped, the
	// network left, the process ends.
	Quit()
}

// Counters are the node's numbers that /metrics publishes.
type Counters struct {
	PeersOnline int
	TunnelBytes uint64
	// MessagesRejected counts mesh messages dropped because their
	// signature did not check out or they spoke for another member.
	MessagesRejected uint64
	// RPCRefused counts the streams the RPC gate closed, by reason.
	RPCRefused map[string]uint64
}

// InvalidInput marks an error caused by what the client sent (a 400).
type InvalidInput interface {
	InvalidInput() bool
}

func (s *Server) nodeRoutes(g *gin.RouterGroup) {
	if s.node == nil {
		return
	}
	g.GET("/status", func(c *gin.Context) { c.JSON(http.StatusOK, s.node.Status()) })
	g.GET("/peers", func(c *gin.Context) { c.JSON(http.StatusOK, s.node.Peers()) })
	g.GET("/plan", func(c *gin.Context) { c.JSON(http.StatusOK, s.node.Plan(c.Query("model"))) })
	g.GET("/requests", func(c *gin.Context) { c.JSON(http.StatusOK, s.Recent()) })
	g.GET("/members", func(c *gin.Context) { c.JSON(http.StatusOK, s.node.Members()) })
	g.GET("/token", s.token)
	g.GET("/models", func(c *gin.Context) { c.JSON(http.StatusOK, s.node.Library()) })
	g.GET("/usage", func(c *gin.Context) { c.JSON(http.StatusOK, s.node.Usage()) })
	g.POST("/pull", s.pull)
	g.POST("/serve", func(c *gin.Context) {
		var req struct {
			Model      *string `json:"model"`
			Embeddings *bool   `json:"embeddings"`
		}
		if !bindJSON(c, &req) {
			return
		}
		if req.Model == nil {
			apiError(c, http.StatusBadRequest, "invalid_request_error", `say which model to serve: {"model": "NAME"}, or {"model": ""} to serve none; add "embeddings": true to serve embeddings from a chat model too`)
			return
		}
		s.nodeResult(c, s.node.Serve(c.Request.Context(), *req.Model, req.Embeddings))
	})
	g.POST("/draft", func(c *gin.Context) {
		var req struct {
			Draft *string `json:"draft"`
		}
		if !bindJSON(c, &req) {
			return
		}
		if req.Draft == nil {
			apiError(c, http.StatusBadRequest, "invalid_request_error", `say which draft model to decode with: {"draft": "auto"}, "none", or a model's name`)
			return
		}
		s.nodeResult(c, s.node.SetDraft(c.Request.Context(), *req.Draft))
	})
	g.POST("/models/delete", s.deleteModel)
	g.POST("/members/remove", func(c *gin.Context) {
		var req struct {
			Peer string `json:"peer"`
		}
		if !bindJSON(c, &req) {
			return
		}
		if req.Peer == "" {
			apiError(c, http.StatusBadRequest, "invalid_request_error", `say whom to remove: {"peer": "<name or peer id>"}`)
			return
		}
		res, err := s.node.RemoveMember(c.Request.Context(), req.Peer)
		if err != nil {
			s.nodeResult(c, err)
			return
		}
		c.JSON(http.StatusOK, res)
	})
	g.POST("/devices", func(c *gin.Context) {
		var req struct {
			Devices []string `json:"devices"`
		}
		if !bindJSON(c, &req) {
			return
		}
		s.nodeResult(c, s.node.SetDevices(c.Request.Context(), req.Devices))
	})
	g.POST("/lend", func(c *gin.Context) {
		var req struct {
			LendTo []string `json:"lend_to"`
		}
		if !bindJSON(c, &req) {
			return
		}
		s.nodeResult(c, s.node.SetLendTo(c.Request.Context(), req.LendTo))
	})
	g.POST("/join", func(c *gin.Context) {
		var req struct {
			Token string `json:"token"`
		}
		if !bindJSON(c, &req) {
			return
		}
		s.nodeResult(c, s.node.Join(c.Request.Context(), req.Token))
	})
	g.POST("/leave", func(c *gin.Context) { s.nodeResult(c, s.node.Leave(c.Request.Context())) })
	g.POST("/quit", func(c *gin.Context) {
		c.JSON(http.StatusAccepted, gin.H{"status": "stopping"})
		c.Writer.Flush()
		s.node.Quit()
	})
	g.POST("/share", func(c *gin.Context) {
		var req struct {
			Mode   string          `json:"mode"`
			Memory json.RawMessage `json:"memory"`
		}
		if !bindJSON(c, &req) {
			return
		}
		mem := ""
		if len(req.Memory) > 0 && string(req.Memory) != "null" {
			var str string
			if err := json.Unmarshal(req.Memory, &str); err != nil {
				str = string(req.Memory) // a plain number of bytes
			}
			mem = str
		}
		s.nodeResult(c, s.node.Share(c.Request.Context(), req.Mode, mem))
	})
}

// pull makes a model available on this machine, as Ollama's /api/pull
// does: {"model": REF, "stream": true} answers NDJSON progress lines
// ({"status", "digest", "total", "completed"}) ending in
// {"status": "success"}, or in {"error": …} once progress has begun. An
// error found before any progress keeps its HTTP status.
func (s *Server) pull(c *gin.Context) {
	var req struct {
		Model  string `json:"model"`
		Name   string `json:"name"` // Ollama's older spelling
		Stream *bool  `json:"stream"`
	}
	if !bindJSON(c, &req) {
		return
	}
	ref := req.Model
	if ref == "" {
		ref = req.Name
	}
	if ref == "" {
		apiError(c, http.StatusBadRequest, "invalid_request_error", `say which model: {"model": "OWNER/REPO:QUANT"}`)
		return
	}
	ctx := c.Request.Context()
	if req.Stream != nil && !*req.Stream {
		m, err := s.node.Pull(ctx, ref, nil)
		if err != nil {
			s.nodeResult(c, err)
			return
		}
		c.JSON(http.StatusOK, gin.H{"status": "success", "model": m})
		return
	}
	// The steps before the first byte are held back, so that a reference
	// that does not exist is still an HTTP error, not a line in a stream.
	started := false
	var held []hub.Progress
	enc := json.NewEncoder(c.Writer)
	_, err := s.node.Pull(ctx, ref, func(p hub.Progress) {
		if !started && p.Total == 0 && p.Status != "success" {
			held = append(held, p)
			return
		}
		if !started {
			started = true
			c.Header("Content-Type", "application/x-ndjson")
			c.Header("Cache-Control", "no-store")
			c.Status(http.StatusOK)
		}
		for _, h := range append(held, p) {
			if enc.Encode(h) != nil {
				return
			}
		}
		held = nil
		c.Writer.Flush()
	})
	switch {
	case err == nil:
	case !started:
		s.nodeResult(c, err)
	default:
		enc.Encode(gin.H{"error": err.Error()})
	}
}

// token gives the invite token, the key to the whole mesh. It is an admin
// endpoint: only clients on this machine or with the admin key get it.
func (s *Server) token(c *gin.Context) {
	tok, err := s.node.InviteToken()
	if err != nil {
		apiError(c, http.StatusConflict, "invalid_request_error", err.Error())
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, gin.H{"token": tok})
}

// bindJSON reads the request body, which must be one JSON value and nothing
// more, into v; false when it answered an error (a 413 past
// adminMaxBody).
func bindJSON(c *gin.Context, v any) bool {
	body, ok := readAtMost(c, adminMaxBody)
	return ok && decodeJSON(c, body, v)
}

func (s *Server) nodeResult(c *gin.Context, err error) {
	if err == nil {
		c.JSON(http.StatusOK, s.node.Status())
		return
	}
	var bad InvalidInput
	if errors.As(err, &bad) && bad.InvalidInput() {
		apiError(c, http.StatusBadRequest, "invalid_request_error", err.Error())
		return
	}
	var missing interface{ NotFound() bool }
	if errors.As(err, &missing) && missing.NotFound() {
		apiError(c, http.StatusNotFound, "not_found_error", err.Error())
		return
	}
	var conflict interface{ Conflict() bool }
	if errors.As(err, &conflict) && conflict.Conflict() {
		apiError(c, http.StatusConflict, "invalid_request_error", err.Error())
		return
	}
	apiError(c, http.StatusInternalServerError, "server_error", err.Error())
}

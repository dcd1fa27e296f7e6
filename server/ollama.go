package server

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
)

// The Ollama-compatible API: the routes of Ollama's own API that chat apps
// use (Open WebUI, Continue, Raycast, Home Assistant), in its shapes, with
// its NDJSON streams and its {"error": "..."} errors. It listens apart from
// the main API, on Config.OllamaAddr, passes the same access checks, and
// reaches models through the same routing: a chat here is a chat
// completion of llama-server's, translated both ways.

// ollamaVersion is the release of Ollama whose API this one follows, which
// /api/version reports: clients compare it to decide what they may use.
const ollamaVersion = "0.12.0"

func (s *Server) ollamaRoutes() *gin.Engine {
	e := gin.New()
	s.middleware(e, listener{addr: s.cfg.OllamaAddr, dialect: dialectOllama, ollama: true})
	e.NoRoute(func(c *gin.Context) {
		apiError(c, http.StatusNotFound, "invalid_request_error", fmt.Sprintf("no route for %s %s", c.Request.Method, c.Request.URL.Path))
	})
	running := func(c *gin.Context) { c.String(http.StatusOK, "Ollama is running") }
	e.GET("/", running)
	e.HEAD("/", running)
	api := e.Group("/api")
	api.GET("/version", func(c *gin.Context) {
		c.JSON(http.StatusOK, gin.H{"version": ollamaVersion, "potluck": s.cfg.Version})
	})
	api.GET("/tags", s.ollamaTags)
	api.GET("/ps", s.ollamaPS)
	api.POST("/show", s.ollamaShow)
	api.POST("/chat", s.ollamaChat)
	api.POST("/generate", s.ollamaGenerate)
	api.POST("/embed", s.ollamaEmbed)
	api.POST("/embeddings", s.ollamaEmbed)
	if s.node != nil {
		api.POST("/pull", s.pull)
		api.DELETE("/delete", s.ollamaDelete)
	}
	for _, r := range []struct{ method, path string }{
		{"POST", "/create"}, {"POST", "/copy"}, {"POST", "/push"},
		{"HEAD", "/blobs/:digest"}, {"POST", "/blobs/:digest"},
	} {
		api.Handle(r.method, r.path, func(c *gin.Context) {
			apiError(c, http.StatusNotImplemented, "invalid_request_error", fmt.Sprintf(
				"Potluck's Ollama API does not support %s %s: Potluck serves GGUF files from its library (potluck models, potluck pull)",
				c.Request.Method, c.Request.URL.Path))
		})
	}
	return e
}

// ollamaModel is a model as /api/tags and /api/ps list it.
type ollamaModel struct {
	Name          string             `json:"name"`
	Model         string             `json:"model"`
	ModifiedAt    *time.Time         `json:"modified_at,omitempty"`
	Size          uint64             `json:"size"`
	Digest        string             `json:"digest"`
	Details       ollamaModelDetails `json:"details"`
	ExpiresAt     *time.Time         `json:"expires_at,omitempty"`
	SizeVRAM      *uint64            `json:"size_vram,omitempty"`
	ContextLength uint64             `json:"context_length,omitempty"`
}

type ollamaModelDetails struct {
	ParentModel       string   `json:"parent_model"`
	Format            string   `json:"format"`
	Family            string   `json:"family"`
	Families          []string `json:"families"`
	ParameterSize     string   `json:"parameter_size"`
	QuantizationLevel string   `json:"quantization_level"`
}

func (s *Server) ollamaModelOf(m Model) ollamaModel {
	d := m.Details
	if d == nil {
		d = &ModelDetails{}
	}
	om := ollamaModel{
		Name: m.ID, Model: m.ID, Size: d.Bytes, Digest: d.Digest,
		Details: ollamaModelDetails{Format: "gguf", Family: d.Arch, ParameterSize: humanCount(d.Params), QuantizationLevel: d.Quant},
	}
	if d.Arch != "" {
		om.Details.Families = []string{d.Arch}
	}
	return om
}

// ollamaTags lists the models this node and its peers serve: what a chat
// here can use.
func (s *Server) ollamaTags(c *gin.Context) {
	models := []ollamaModel{}
	for _, m := range s.router.Models() {
		om := s.ollamaModelOf(m)
		om.ModifiedAt = &s.started
		models = append(models, om)
	}
	c.JSON(http.StatusOK, gin.H{"models": models})
}

// ollamaPS lists the models loaded and ready, with when each unloads if
// no request comes: the model a node serves, and those loaded on a
// member, stay.
func (s *Server) ollamaPS(c *gin.Context) {
	models := []ollamaModel{}
	forever := time.Date(2318, 1, 1, 0, 0, 0, 0, time.UTC) // Ollama's "never unloads"
	for _, m := range s.router.Models() {
		if !m.Ready {
			continue
		}
		om := s.ollamaModelOf(m)
		om.ExpiresAt = &forever
		if m.ExpiresAt != nil {
			om.ExpiresAt = m.ExpiresAt
		}
		var vram uint64
		om.SizeVRAM = &vram // not known here; the plan says where it is
		if m.Details != nil {
			om.ContextLength = m.Details.Context
		}
		models = append(models, om)
	}
	c.JSON(http.StatusOK, gin.H{"models": models})
}

// ollamaShow describes one model: its details and what it can do.
func (s *Server) ollamaShow(c *gin.Context) {
	var req struct {
		Model string `json:"model"`
		Name  string `json:"name"` // the older spelling
	}
	if !s.ollamaBody(c, &req, nil) {
		return
	}
	name := req.Model
	if name == "" {
		name = req.Name
	}
	m, ok := s.findModel(name)
	if !ok {
		apiError(c, http.StatusNotFound, "invalid_request_error", fmt.Sprintf("model %q not found: %v", name, s.unknownModel(name)))
		return
	}
	om := s.ollamaModelOf(m)
	info := gin.H{"general.architecture": om.Details.Family}
	if d := m.Details; d != nil {
		if d.Params > 0 {
			info["general.parameter_count"] = d.Params
		}
		if d.Context > 0 && d.Arch != "" {
			info[d.Arch+".context_length"] = d.Context
		}
	}
	caps := m.Capabilities
	if caps == nil {
		caps = []string{}
	}
	c.JSON(http.StatusOK, gin.H{
		"modelfile":    "# Served by Potluck\nFROM " + m.ID + "\n",
		"parameters":   "",
		"template":     "",
		"details":      om.Details,
		"model_info":   info,
		"capabilities": caps,
		"modified_at":  s.started,
	})
}

// findModel finds a model by the name a client gives it: its id, or its
// id with Ollama's default tag ":latest".
func (s *Server) findModel(name string) (Model, bool) {
	models := s.router.Models()
	if name == "" && len(models) == 1 {
		return models[0], true
	}
	for _, n := range []string{name, strings.TrimSuffix(name, ":latest")} {
		if i := slices.IndexFunc(models, func(m Model) bool { return m.ID == n }); i >= 0 {
			return models[i], true
		}
	}
	return Model{}, false
}

// modelID is the id of the model a client names, or the name as it is
// when no model has it (the router then says which exist).
func (s *Server) modelID(name string) string {
	if m, ok := s.findModel(name); ok && name != "" {
		return m.ID
	}
	return name
}

func (s *Server) unknownModel(name string) error {
	var ids []string
	for _, m := range s.router.Models() {
		ids = append(ids, m.ID)
	}
	return &UnknownModelError{Model: name, Available: ids}
}

// ollamaBody reads the request body into v, once check (if any) finds
// nothing wrong with it; false when it answered an error.
func (s *Server) ollamaBody(c *gin.Context, v any, check func(*checker, object)) bool {
	body, ok := s.readBody(c)
	if !ok || (check != nil && !checkBody(c, body, check)) {
		return false
	}
	return decodeJSON(c, body, v)
}

// humanCount writes a parameter count as Ollama does: 8.0B, 137M, 292K.
func humanCount(n uint64) string {
	switch {
	case n == 0:
		return ""
	case n >= 1e9:
		return strconv.FormatFloat(float64(n)/1e9, 'f', 1, 64) + "B"
	case n >= 1e6:
		return strconv.FormatFloat(float64(n)/1e6, 'f', 0, 64) + "M"
	case n >= 1e3:
		return strconv.FormatFloat(float64(n)/1e3, 'f', 0, 64) + "K"
	}
	return strconv.FormatUint(n, 10)
}

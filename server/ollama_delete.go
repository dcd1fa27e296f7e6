package server

import (
	"cmp"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
)

// Deleting a model: POST /api/models/delete on the node API, and Ollama's
// DELETE /api/delete on the Ollama-compatible one. Both are admin
// endpoints (see kindOf), and both delete only from Potluck's own store:
// the node refuses the rest.

// deleteRequest names the model to delete: "model", or "name" as Ollama's
// older clients (and its JavaScript client still) send it.
type deleteRequest struct {
	Model string `json:"model"`
	Name  string `json:"name"`
}

func (r deleteRequest) name() string { return strings.TrimSpace(cmp.Or(r.Model, r.Name)) }

const sayWhichModel = `say which model to delete: {"model": "NAME"}, with NAME as ` + "`potluck models`" + ` lists it`

// deleteModel removes a model from Potluck's store: {"model": NAME}
// answers {"status": "success", "model": {…}}, the model removed.
func (s *Server) deleteModel(c *gin.Context) {
	var req deleteRequest
	if !bindJSON(c, &req) {
		return
	}
	if req.name() == "" {
		apiError(c, http.StatusBadRequest, "invalid_request_error", sayWhichModel)
		return
	}
	m, err := s.node.DeleteModel(c.Request.Context(), req.name())
	if err != nil {
		s.nodeResult(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "success", "model": m})
}

// ollamaDelete is Ollama's DELETE /api/delete: an empty 200 once the model
// is deleted, and a 404 "model 'NAME' not found" when there is none. A name
// with Ollama's default tag ":latest" is the model without it.
func (s *Server) ollamaDelete(c *gin.Context) {
	var req deleteRequest
	if !bindJSON(c, &req) {
		return
	}
	name := req.name()
	if name == "" {
		apiError(c, http.StatusBadRequest, "invalid_request_error", sayWhichModel)
		return
	}
	ctx := c.Request.Context()
	_, err := s.node.DeleteModel(ctx, name)
	if base, tagged := strings.CutSuffix(name, ":latest"); tagged && base != "" && notFound(err) {
		_, err = s.node.DeleteModel(ctx, base)
	}
	switch {
	case err == nil:
		c.Status(http.StatusOK)
	case notFound(err):
		apiError(c, http.StatusNotFound, "not_found_error", fmt.Sprintf("model '%s' not found", name))
	default:
		s.nodeResult(c, err)
	}
}

func notFound(err error) bool {
	var missing interface{ NotFound() bool }
	return errors.As(err, &missing) && missing.NotFound()
}

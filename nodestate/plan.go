package nodestate

import "github.com/potluck-gpu/potluck/engine"

// PlanView is the document behind GET /api/plan.
type PlanView struct {
	Model  string       `json:"model"`
	Detail string       `json:"detail,omitempty"` // what the head is doing or waiting for
	Plan   *engine.Plan `json:"plan,omitempty"`
	Error  string       `json:"error,omitempty"`
}

package app

import (
	"github.com/potluck-gpu/potluck/library"
	"github.com/potluck-gpu/potluck/nodestate"
)

// Plan returns the current plan, or for model (a GGUF path) the plan this
// node would make for it with the pool as it is now.
func (n *Node) Plan(model string) nodestate.PlanView {
	var hostPath, hostAlias string
	mh := n.modelHost()
	if mh != nil {
		hostPath, hostAlias = mh.Ident()
	}
	if model != "" && (mh == nil || (model != hostPath && model != hostAlias)) {
		path, alias, ok := n.findModel(model)
		if !ok {
			return nodestate.PlanView{Model: model, Error: (&library.NotFoundError{Name: model}).Error()}
		}
		h := n.newHostLogged(model, "")
		h.SetModel(path, alias)
		p, err := h.Plan()
		if err != nil {
			return nodestate.PlanView{Model: alias, Error: err.Error()}
		}
		return nodestate.PlanView{Model: alias, Detail: "not being served: what this node would do now", Plan: &p}
	}
	if mh == nil {
		return nodestate.PlanView{Error: "this node serves no model: start it with --model PATH, or ask for a plan with ?model=PATH"}
	}
	p, detail := mh.CurrentPlan()
	return nodestate.PlanView{Model: hostAlias, Detail: detail, Plan: &p}
}

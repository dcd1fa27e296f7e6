package app

// servedInFlight is how many requests this node's model is serving now.
func (n *Node) servedInFlight() int {
	total := 0
	if h := n.modelHost(); h != nil {
		total = h.InFlight()
	}
	for _, l := range n.sched.Loaded() {
		if !l.Pinned {
			total += l.Model.InFlight()
		}
	}
	return total
}

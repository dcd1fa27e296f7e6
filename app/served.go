package app

// servedInFlight is how many requests this node's model is serving now.
func (n *Node) servedInFlight() int {
	if h := n.modelHost(); h != nil {
		return h.InFlight()
	}
	return 0
}

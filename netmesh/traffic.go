package netmesh

// Traffic is what the mesh carried since this node started, in bytes:
// the payload of its streams (heartbeats and gossip, pings, tunnels and
// the rest), in all and by protocol. Transport overhead (TCP,
// encryption, multiplexing) and LAN discovery are not counted.
type Traffic struct {
	In, Out    int64
	ByProtocol map[string]ProtocolTraffic
}

// ProtocolTraffic is one protocol's share of Traffic.
type ProtocolTraffic struct{ In, Out int64 }

// Traffic is what the mesh carried since this node started.
func (n *Node) Traffic() Traffic {
	t := Traffic{ByProtocol: map[string]ProtocolTraffic{}}
	all := n.traffic.GetBandwidthTotals()
	t.In, t.Out = all.TotalIn, all.TotalOut
	for p, s := range n.traffic.GetBandwidthByProtocol() {
		if s.TotalIn > 0 || s.TotalOut > 0 {
			name := string(p)
			if name == "" {
				name = "(choosing a protocol)" // a stream's first bytes
			}
			t.ByProtocol[name] = ProtocolTraffic{In: s.TotalIn, Out: s.TotalOut}
		}
	}
	return t
}

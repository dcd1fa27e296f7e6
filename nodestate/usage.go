package nodestate

// Usage is what this machine gave to and used from each peer.
type Usage struct {
	Self  string      `json:"peer_id"`
	Peers []PeerUsage `json:"peers"`
	// Gave and Used are the totals over every peer.
	Gave UsageWindows `json:"gave"`
	Used UsageWindows `json:"used"`
	// ShareLimit is the daily limit of tokens per peer (0: none).
	ShareLimit uint64 `json:"share_limit"`
	// Pairs is the whole network's accounts as this node knows them, over
	// all time: who served whom.
	Pairs []UsagePair `json:"pairs"`
}

// PeerUsage is one peer's line.
type PeerUsage struct {
	ID   string       `json:"peer_id"`
	Name string       `json:"name"`
	OS   string       `json:"os,omitempty"` // "linux", "windows", "darwin"
	Gave UsageWindows `json:"gave"`         // this machine served the peer
	Used UsageWindows `json:"used"`         // the peer served this machine
}

// UsageWindows are tokens (in and out) over the last day, week and all
// time.
type UsageWindows struct {
	Today float64 `json:"today"`
	Week  float64 `json:"week"`
	All   float64 `json:"all"`
}

// UsagePair is one entry of the network's accounts.
type UsagePair struct {
	Server    string  `json:"server"`
	Asker     string  `json:"asker"`
	Requests  float64 `json:"requests"`
	TokensIn  float64 `json:"tokens_in"`
	TokensOut float64 `json:"tokens_out"`
}

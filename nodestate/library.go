package nodestate

import "github.com/potluck-gpu/potluck/library"

// LibraryView is the document behind GET /api/models: the models on this
// machine, and the places that could not be read.
type LibraryView struct {
	Models []library.Model `json:"models"`
	// Peers are the models only peers have: serving or pulling one
	// copies it from them.
	Peers    []PeerModel       `json:"peer_models,omitempty"`
	Warnings []library.Warning `json:"warnings,omitempty"`
	Serving  string            `json:"serving,omitempty"` // the name of the model this node serves
	Store    string            `json:"store"`             // where pulls go
	// Embeddings names the models chosen to serve embeddings too.
	Embeddings []string `json:"embeddings,omitempty"`
	// Draft is the draft model chosen for speculative decoding: "auto",
	// "none", "ngram" or a model's name; DraftFixed says the command line
	// chose it (--draft), so no user interface can change it.
	Draft      string `json:"draft"`
	DraftFixed bool   `json:"draft_fixed,omitempty"`
}

// PeerModel is a model peers offer to copy.
type PeerModel struct {
	Name string   `json:"name"`
	Size uint64   `json:"size"`
	On   []string `json:"on"` // the peers that have it
}

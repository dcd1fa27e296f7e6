package app

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/potluck-gpu/potluck/internal/atomicfile"
	"github.com/potluck-gpu/potluck/netmesh"
	"github.com/potluck-gpu/potluck/nodestate"
)

// Settings are the user's choices that outlive a restart: the mesh joined
// and how this machine is shared. The file holds the invite token, so it is
// readable by the owner only.
type Settings struct {
	Token       string              `json:"token,omitempty"`
	Share       nodestate.ShareMode `json:"share,omitempty"`
	ShareMemory uint64              `json:"share_memory,omitempty"`
	// ShareLimit is the daily tokens each peer may use of this node's
	// model (see Config.ShareLimit); 0: no limit.
	ShareLimit uint64 `json:"share_limit,omitempty"`
	// LendTo are the members (names or peer ids) this machine's shard
	// worker serves; empty: every member.
	LendTo []string `json:"lend_to,omitempty"`
	// Model is the model chosen to serve (a library name, a path or a
	// reference) when none is given with --model.
	Model string `json:"model,omitempty"`
	// Devices are the devices chosen to serve and lend (see
	// Config.Devices); empty: every device that makes a plan faster.
	Devices []string `json:"devices,omitempty"`
	// Embeddings are the models (as named to serve them) that serve
	// embeddings too, chosen in a user interface.
	Embeddings []string `json:"embeddings,omitempty"`

	// PastTokens are the fingerprints of tokens the network moved away
	// from when its owner removed a member: a --token naming one of them
	// means Token.
	PastTokens []string `json:"past_tokens,omitempty"`
	// Handoffs are networks this node moved away from that still hand
	// the owner's removal to members that have not moved yet.
	Handoffs []SavedHandoff `json:"handoffs,omitempty"`
	// RemovedFrom is the fingerprint of the token of a network whose
	// owner removed this computer.
	RemovedFrom string `json:"removed_from,omitempty"`
}

// SavedHandoff is a retired network kept up for members still on it.
type SavedHandoff struct {
	Token   string    `json:"token"`   // the retired token
	Removal []byte    `json:"removal"` // the owner's signed removal
	Pending []string  `json:"pending"` // peer ids of members that have not moved
	Since   time.Time `json:"since"`
}

// maxPastTokens bounds Settings.PastTokens.
const maxPastTokens = 16

// movedFrom says whether token is one the network moved away from.
func (s Settings) movedFrom(token string) bool {
	tok, err := netmesh.ParseToken(token)
	if err != nil || s.Token == "" || s.Token == token {
		return false
	}
	return slices.Contains(s.PastTokens, tok.Fingerprint())
}

const settingsFile = "settings.json"

// LoadSettings reads the settings in dir; a missing file is empty settings.
func LoadSettings(dir string) (Settings, error) {
	var s Settings
	data, err := os.ReadFile(filepath.Join(dir, settingsFile))
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(data, &s); err != nil {
		return Settings{}, fmt.Errorf("%s is damaged (%v): fix or delete it", filepath.Join(dir, settingsFile), err)
	}
	return s, nil
}

// Save writes the settings atomically with mode 0600.
func (s Settings) Save(dir string) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, settingsFile), data, 0o600)
}

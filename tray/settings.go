package tray

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/potluck-gpu/potluck/internal/atomicfile"
	"github.com/potluck-gpu/potluck/nodestate"
)

// settingsFile is the tray's settings in the data directory.
const settingsFile = "tray.json"

// Settings are the tray's choices that outlive a run.
type Settings struct {
	// ShareAs is the mode "Share this computer" turns on: worker or server.
	ShareAs nodestate.ShareMode `json:"share_as"`
	// Memory is the bytes to offer; 0 lets the node decide.
	Memory uint64 `json:"memory"`
}

// Whether the computer is shared is the node's to remember: it resumes its
// share mode at start.

func defaultSettings() Settings {
	return Settings{ShareAs: nodestate.ShareWorker}
}

// loadSettings reads the settings in dir; a missing file gives the
// defaults.
func loadSettings(dir string) (Settings, error) {
	s := defaultSettings()
	b, err := os.ReadFile(filepath.Join(dir, settingsFile))
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return defaultSettings(), fmt.Errorf("%s: %w", settingsFile, err)
	}
	if s.ShareAs != nodestate.ShareWorker && s.ShareAs != nodestate.ShareServer {
		s.ShareAs = nodestate.ShareWorker
	}
	return s, nil
}

// saveSettings writes s to dir, readable by this user only.
func saveSettings(dir string, s Settings) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, settingsFile), append(b, '\n'), 0o600)
}

package app

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Settings are the user's choices that outlive a restart: the mesh joined
// and how this machine is shared. The file holds the invite token, so it is
// readable by the owner only.
type Settings struct {
	Token       string    `json:"token,omitempty"`
	Share       ShareMode `json:"share,omitempty"`
	ShareMemory uint64    `json:"share_memory,omitempty"`
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
	tmp, err := os.CreateTemp(dir, ".settings-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), filepath.Join(dir, settingsFile))
}

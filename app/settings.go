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
	return WriteFileAtomic(filepath.Join(dir, settingsFile), data, 0o600)
}

// WriteFileAtomic replaces name with data, so a crash leaves the old file or
// the new one, never half of either. The file has mode perm from the start.
func WriteFileAtomic(name string, data []byte, perm fs.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(name), 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, name)
}

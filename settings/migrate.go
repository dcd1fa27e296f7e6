package settings

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/potluck-gpu/potluck/nodestate"
)

// trayFile is where trays before the settings had one owner kept the mode
// sharing turns on and the memory to offer.
const trayFile = "tray.json"

// oldTray is tray.json's content.
type oldTray struct {
	ShareAs nodestate.ShareMode `json:"share_as"`
	Memory  uint64              `json:"memory"`
}

// migrateTray moves tray.json's values into the settings and removes the
// file, once the settings holding them are saved. A value the settings
// already hold wins: the node kept the memory offered too. A damaged file
// is kept aside as tray.json.damaged, for the user to read.
func (s *Store) migrateTray(dir string) error {
	path := filepath.Join(dir, trayFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading the old tray settings: %w", err)
	}
	var old oldTray
	if err := json.Unmarshal(data, &old); err != nil {
		if rerr := os.Rename(path, path+".damaged"); rerr != nil {
			return fmt.Errorf("%s is damaged (%v) and could not be put aside: %w", path, err, rerr)
		}
		return nil
	}
	err = s.Modify(func(v *Settings) {
		if v.ShareAs == "" && (old.ShareAs == nodestate.ShareWorker || old.ShareAs == nodestate.ShareServer) {
			v.ShareAs = old.ShareAs
		}
		if v.ShareMemory == 0 {
			v.ShareMemory = old.Memory
		}
	})
	if err != nil {
		return err
	}
	// Saved, or nothing new to save: the old file has said what it knew.
	return os.Remove(path)
}

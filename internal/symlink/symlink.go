// Package symlink says whether this system makes symbolic links that can
// be followed: Windows makes them only for administrators or in Developer
// Mode, and Wine reports them made without making them.
package symlink

import (
	"os"
	"path/filepath"
)

// Works tries a link in dir and follows it.
func Works(dir string) bool {
	target := filepath.Join(dir, ".symlink-target")
	link := filepath.Join(dir, ".symlink-link")
	defer os.Remove(target)
	defer os.Remove(link)
	if err := os.WriteFile(target, []byte("x"), 0o600); err != nil {
		return false
	}
	if err := os.Symlink(filepath.Base(target), link); err != nil {
		return false
	}
	data, err := os.ReadFile(link)
	return err == nil && string(data) == "x"
}

//go:build !windows

package tray

import (
	"errors"
	"io/fs"
	"os"
	"runtime"

	"github.com/potluck-gpu/potluck/internal/atomicfile"
)

// fileAutostart is an autostart entry that is a file: present means on.
type fileAutostart struct {
	path    string
	content string
}

func newAutostart(getenv func(string) string, cmd autostartCommand) (autostart, error) {
	home := getenv("HOME")
	if home == "" {
		return nil, errNoHome
	}
	content, err := autostartContent(runtime.GOOS, cmd)
	if err != nil {
		return nil, err
	}
	return &fileAutostart{path: autostartPath(runtime.GOOS, home, getenv("XDG_CONFIG_HOME")), content: content}, nil
}

func (a *fileAutostart) Enabled() bool {
	_, err := os.Stat(a.path)
	return err == nil
}

func (a *fileAutostart) SetEnabled(on bool) error {
	if !on {
		if err := os.Remove(a.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	return atomicfile.Write(a.path, []byte(a.content), 0o644)
}

package tray

import (
	"errors"

	"golang.org/x/sys/windows/registry"
)

// runKey is where Windows finds the programs to start at login.
const runKey = `Software\Microsoft\Windows\CurrentVersion\Run`

// registryAutostart is a value under the current user's Run key.
type registryAutostart struct {
	command string
}

func newAutostart(_ func(string) string, cmd autostartCommand) (autostart, error) {
	line, err := autostartContent("windows", cmd)
	if err != nil {
		return nil, err
	}
	return &registryAutostart{command: line}, nil
}

func (a *registryAutostart) Enabled() bool {
	k, err := registry.OpenKey(registry.CURRENT_USER, runKey, registry.QUERY_VALUE)
	if err != nil {
		return false
	}
	defer k.Close()
	_, _, err = k.GetStringValue("Potluck")
	return err == nil
}

func (a *registryAutostart) SetEnabled(on bool) error {
	k, _, err := registry.CreateKey(registry.CURRENT_USER, runKey, registry.SET_VALUE)
	if err != nil {
		return err
	}
	defer k.Close()
	if on {
		return k.SetStringValue("Potluck", a.command)
	}
	if err := k.DeleteValue("Potluck"); err != nil && !errors.Is(err, registry.ErrNotExist) {
		return err
	}
	return nil
}

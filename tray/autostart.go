package tray

import (
	"encoding/xml"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
)

// autostart turns "Start at login" on and off: an XDG autostart entry on
// Linux and the BSDs, a LaunchAgent on macOS, a Run registry value on
// Windows.
type autostart interface {
	Enabled() bool
	SetEnabled(on bool) error
}

// autostartCommand is what runs at login.
type autostartCommand struct {
	Exe  string
	Args []string
}

// autostartPath is where the entry lives for goos, or "" on Windows (the
// registry). home is the user's home directory and xdgConfig
// XDG_CONFIG_HOME, which may be empty.
func autostartPath(goos, home, xdgConfig string) string {
	switch goos {
	case "windows":
		return ""
	case "darwin":
		return filepath.Join(home, "Library", "LaunchAgents", AppID+".plist")
	}
	if xdgConfig == "" || !filepath.IsAbs(xdgConfig) {
		xdgConfig = filepath.Join(home, ".config")
	}
	return filepath.Join(xdgConfig, "autostart", "potluck.desktop")
}

// autostartContent renders the entry for goos.
func autostartContent(goos string, cmd autostartCommand) (string, error) {
	switch goos {
	case "windows":
		return windowsCommandLine(append([]string{cmd.Exe}, cmd.Args...)), nil
	case "darwin":
		return launchAgent(cmd), nil
	}
	return desktopEntry(cmd)
}

// desktopEntry renders an XDG autostart entry
// (https://specifications.freedesktop.org/autostart-spec/).
func desktopEntry(cmd autostartCommand) (string, error) {
	words := make([]string, 0, 1+len(cmd.Args))
	for _, a := range append([]string{cmd.Exe}, cmd.Args...) {
		w, err := desktopExecArg(a)
		if err != nil {
			return "", err
		}
		words = append(words, w)
	}
	return "[Desktop Entry]\n" +
		"Type=Application\n" +
		"Name=Potluck\n" +
		"Comment=Pool the GPUs and memory of your machines to run LLMs\n" +
		"Exec=" + strings.Join(words, " ") + "\n" +
		"Icon=" + AppID + "\n" +
		"Terminal=false\n" +
		"Categories=Network;Utility;\n" +
		"X-GNOME-Autostart-enabled=true\n", nil
}

// desktopExecArg quotes one word of an Exec key: reserved characters need
// double quotes; inside them ", `, $ and \ take a backslash, and the value's
// own escaping doubles every backslash again; % is written %%.
func desktopExecArg(s string) (string, error) {
	if strings.ContainsAny(s, "\n\r") {
		return "", errors.New("a line break cannot be written in a desktop entry")
	}
	s = strings.ReplaceAll(s, "%", "%%")
	if s != "" && !strings.ContainsAny(s, " \t\"'\\><~|&;$*?#()`") {
		return s, nil
	}
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"', '`', '$':
			b.WriteString(`\\`)
		case '\\':
			b.WriteString(`\\\`)
		}
		b.WriteRune(r)
	}
	b.WriteByte('"')
	return b.String(), nil
}

// launchAgent renders a macOS LaunchAgent that starts Potluck at login.
func launchAgent(cmd autostartCommand) string {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>Label</key>
	<string>` + AppID + `</string>
	<key>ProgramArguments</key>
	<array>
`)
	for _, a := range append([]string{cmd.Exe}, cmd.Args...) {
		b.WriteString("\t\t<string>")
		xml.EscapeText(&b, []byte(a))
		b.WriteString("</string>\n")
	}
	b.WriteString(`	</array>
	<key>RunAtLoad</key>
	<true/>
	<key>ProcessType</key>
	<string>Interactive</string>
</dict>
</plist>
`)
	return b.String()
}

// windowsCommandLine joins words the way CommandLineToArgvW splits them.
func windowsCommandLine(words []string) string {
	out := make([]string, len(words))
	for i, w := range words {
		out[i] = windowsArg(w)
	}
	return strings.Join(out, " ")
}

func windowsArg(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\"") {
		return s
	}
	var b strings.Builder
	b.WriteByte('"')
	slashes := 0
	for _, r := range s {
		switch r {
		case '\\':
			slashes++
		case '"':
			b.WriteString(strings.Repeat(`\`, slashes+1))
			slashes = 0
		default:
			slashes = 0
		}
		b.WriteRune(r)
	}
	b.WriteString(strings.Repeat(`\`, slashes))
	b.WriteByte('"')
	return b.String()
}

// errNoHome is returned when the home directory is unknown.
var errNoHome = fmt.Errorf("start at login: no home directory (HOME is not set)")

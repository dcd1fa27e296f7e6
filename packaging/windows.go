package main

import (
	"os"
	"path/filepath"
	"time"
)

// writeWindowsResources writes NAME.ico, NAME.manifest and NAME.rc into
// out; windres compiles the .rc (which names the other two) into the object
// that gives potluck.exe its icon, version information and manifest.
func writeWindowsResources(m Meta, root, out string) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	icon, err := loadPNG(filepath.Join(root, "icons", "app.png"))
	if err != nil {
		return err
	}
	ico, err := encodeICO(icon, icoSizes)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, m.Command+".ico"), ico, 0o644); err != nil {
		return err
	}
	v := newView(m, m.Command+".exe", time.Time{})
	if err := renderTo(filepath.Join(out, m.Command+".manifest"), "potluck.manifest.tmpl", v); err != nil {
		return err
	}
	return renderTo(filepath.Join(out, m.Command+".rc"), "potluck.rc.tmpl", v)
}

// writeNSISDefines writes defines.nsh, the metadata potluck.nsi includes.
func writeNSISDefines(m Meta, out string) error {
	return renderTo(filepath.Join(out, "defines.nsh"), "defines.nsh.tmpl", newView(m, m.Command+".exe", time.Time{}))
}

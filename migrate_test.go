package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/potluck-gpu/potluck/internal/nodetest"
	"github.com/potluck-gpu/potluck/settings"
)

// A data folder an older Potluck left: its tray kept the mode sharing
// turns on and the memory to offer in tray.json. The node takes them into
// settings.json at its first start, the file goes, and the status (which
// the tray reads) shows them; a second start finds nothing to move.
func TestTraySettingsMoveIntoTheNode(t *testing.T) {
	dir := t.TempDir()
	old, err := os.ReadFile(filepath.Join("settings", "testdata", "v0.6", "tray.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tray.json"), old, 0o600); err != nil {
		t.Fatal(err)
	}
	for start := range 2 {
		p := &proc{nodetest.Start(t, nodetest.Config{DataDir: dir})}
		st := p.WaitStatus(t, "the status", func(map[string]any) bool { return true })
		if st["share_as"] != "server" || st["share_memory"] != float64(6<<30) || st["share"] != "off" {
			t.Errorf("start %d: share %v, share_as %v, share_memory %v", start+1, st["share"], st["share_as"], st["share_memory"])
		}
		if _, err := os.Stat(filepath.Join(dir, "tray.json")); !os.IsNotExist(err) {
			t.Errorf("start %d: tray.json is still there (%v)", start+1, err)
		}
		saved, err := settings.Load(dir)
		if err != nil || saved.ShareAs != "server" || saved.ShareMemory != 6<<30 {
			t.Errorf("start %d: settings.json holds %+v (%v)", start+1, saved, err)
		}
		p.stop(t)
	}
}

package lab_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/lab"
)

// A node whose settings, address book and ledger were all damaged on disk
// (a bad sector, an editor gone wrong) starts, sets each damaged file
// aside, goes on from its backup copy, says so on its status, and is back
// in the network; nothing it knew is lost.
func TestLabDamagedFiles(t *testing.T) {
	nw := lab.New(t, 2, lab.Options{})
	a, b := nw.Nodes[0], nw.Nodes[1]
	b.PeerID()
	nw.Wait("a to see b", 30*time.Second, func() bool { p, ok := a.PeerByName(b.Name); return ok && p.Online })
	if err := a.Admin("/api/lend", map[string]any{"lend_to": []string{b.Name}}, nil); err != nil {
		t.Fatal(err)
	}
	a.Stop() // a clean stop saves the address book
	files := []string{"settings.json", "peers.json", "ledger.json"}
	for _, f := range files[:2] {
		if _, err := os.Stat(filepath.Join(a.DataDir, f+".backup")); err != nil {
			t.Fatalf("no backup of %s: %v", f, err)
		}
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(a.DataDir, f), []byte("{\x00\x00 a bad sector"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t0 := time.Now()
	a.Restart()
	api := time.Since(t0)
	nw.Wait("a back in the network", 30*time.Second, func() bool { p, ok := a.PeerByName(b.Name); return ok && p.Online })
	t.Logf("LAB damaged files: API answered %.2fs after the start, back in the network %.2fs after it", api.Seconds(), time.Since(t0).Seconds())

	st, err := a.Status()
	if err != nil {
		t.Fatal(err)
	}
	codes := map[string]string{}
	for _, w := range st.Warnings {
		codes[w.Code] = w.Message
	}
	for _, code := range []string{"damaged-settings", "damaged-ledger"} {
		if !strings.Contains(codes[code], "damaged") {
			t.Errorf("status warning %s: %q; warnings %v", code, codes[code], codes)
		}
	}
	if s, _ := os.ReadFile(filepath.Join(a.DataDir, "settings.json")); !strings.Contains(string(s), `"`+b.Name+`"`) {
		t.Errorf("settings after recovery %s; want lend_to %s kept", s, b.Name)
	}
	for _, f := range files {
		m, _ := filepath.Glob(filepath.Join(a.DataDir, f+".damaged-*"))
		if len(m) != 1 {
			t.Errorf("%s: damaged copies %v; want one kept", f, m)
			continue
		}
		if s, _ := os.ReadFile(m[0]); !strings.Contains(string(s), "a bad sector") {
			t.Errorf("%s: the damaged copy holds %q", f, s)
		}
	}
	if !strings.Contains(a.Quiet(200), "peers.json is damaged") {
		t.Error("the node did not say its address book was damaged")
	}
}

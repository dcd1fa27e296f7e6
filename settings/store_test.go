package settings

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/potluck-gpu/potluck/internal/atomicfile"
	"github.com/potluck-gpu/potluck/nodestate"
)

func TestModifySavesPrivatelyAndTells(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Get(); !reflect.DeepEqual(got, Settings{}) {
		t.Fatalf("no file: %+v", got)
	}
	changed, cancel := s.Subscribe()
	defer cancel()
	if err := s.Modify(func(v *Settings) { v.Token, v.Share, v.Devices = "secret", nodestate.ShareWorker, []string{"CPU"} }); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
	default:
		t.Error("a change was not told")
	}
	fi, err := os.Stat(filepath.Join(dir, File))
	if err != nil || !atomicfile.Private(fi) {
		t.Fatalf("settings file %v, %v; want mode 0600", fi, err)
	}
	if got, err := Load(dir); err != nil || got.Token != "secret" || got.Share != nodestate.ShareWorker {
		t.Errorf("Load = %+v, %v", got, err)
	}

	// A snapshot is its holder's: a later change does not write into it.
	snap := s.Get()
	if err := s.Modify(func(v *Settings) { v.Devices[0] = "Vulkan0" }); err != nil {
		t.Fatal(err)
	}
	if snap.Devices[0] != "CPU" || s.Get().Devices[0] != "Vulkan0" {
		t.Errorf("snapshot %v, now %v", snap.Devices, s.Get().Devices)
	}

	// A change that changes nothing writes nothing and tells nobody.
	<-changed
	os.Remove(filepath.Join(dir, File))
	if err := s.Modify(func(v *Settings) { v.Token = "secret" }); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, File)); err == nil {
		t.Error("a change to nothing rewrote the file")
	}
	select {
	case <-changed:
		t.Error("a change to nothing was told")
	default:
	}

	// A damaged file is set aside, and its backup copy serves: nothing
	// is lost.
	if err := s.Modify(func(v *Settings) { v.Model = "m1" }); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, File), []byte("{nope"), 0o600)
	s2, err := Open(dir)
	if err != nil {
		t.Fatalf("damaged file with a good copy: %v", err)
	}
	if got := s2.Get(); got.Token != "secret" || got.Model != "m1" {
		t.Errorf("recovered settings %+v; want the last ones", got)
	}
	if r := s2.Recovered(); !strings.Contains(r, "damaged") || !strings.Contains(r, "kept as") {
		t.Errorf("Recovered() = %q", r)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, File)); !strings.Contains(string(b), `"m1"`) {
		t.Errorf("the settings file after recovery holds %q; want it written again", b)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, File+".damaged-*")); len(m) != 1 {
		t.Errorf("damaged copies %v; want one", m)
	}
	if s.Get().Token != "secret" {
		t.Error("lost the token")
	}

	// With no good copy, Open fails and leaves the file.
	os.WriteFile(filepath.Join(dir, File), []byte("{nope"), 0o600)
	os.WriteFile(filepath.Join(dir, File+".backup"), []byte("{"), 0o600)
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Errorf("damaged file: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, File)); string(b) != "{nope" {
		t.Errorf("the damaged file became %q", b)
	}
}

// Changes from many goroutines all land, and the file holds the last.
func TestModifyConcurrent(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Modify(func(v *Settings) { v.Embeddings = append(v.Embeddings, string(rune('a'+i))) }); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	got, err := Load(dir)
	if err != nil || len(got.Embeddings) != 20 || !reflect.DeepEqual(got, s.Get()) {
		t.Errorf("file %+v (%v), store %+v", got, err, s.Get())
	}
}

// A failed write keeps the change for this run and says so.
func TestModifyUnwritable(t *testing.T) {
	// The file's place is a directory: even root cannot write it.
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, File), 0o700); err != nil {
		t.Fatal(err)
	}
	err = s.Modify(func(v *Settings) { v.Model = "tiny" })
	if err == nil || !strings.Contains(err.Error(), "could not save the settings") {
		t.Errorf("Modify over a directory: %v", err)
	}
	if s.Get().Model != "tiny" {
		t.Error("the change was lost with the write")
	}
	if err := s.Retry(); err == nil {
		t.Error("Retry over a directory: nil")
	}
	// The place is free again (a full disk emptied): Retry writes the
	// change no later Modify repeated.
	if err := os.Remove(filepath.Join(dir, File)); err != nil {
		t.Fatal(err)
	}
	if err := s.Retry(); err != nil {
		t.Fatal(err)
	}
	if got, err := Load(dir); err != nil || got.Model != "tiny" {
		t.Errorf("saved %+v (%v) after Retry; want the model kept", got, err)
	}
}

// A data directory from before the settings had one owner: the tray kept
// the mode sharing turns on and the memory in tray.json. Its values move
// into settings.json once, the file goes, and nothing else changes.
func TestMigrateTray(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"tray.json", "settings.json"} {
		b, err := os.ReadFile(filepath.Join("testdata", "v0.6", name))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, name), b, 0o600)
	}
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := Settings{Token: "potluck1.example", Share: nodestate.ShareOff, ShareLimit: 500000,
		ShareAs: nodestate.ShareServer, ShareMemory: 6 << 30}
	if got := s.Get(); !reflect.DeepEqual(got, want) {
		t.Errorf("migrated %+v, want %+v", got, want)
	}
	if got, err := Load(dir); err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("saved %+v (%v), want %+v", got, err, want)
	}
	if _, err := os.Stat(filepath.Join(dir, "tray.json")); !os.IsNotExist(err) {
		t.Errorf("tray.json is still there: %v", err)
	}

	// Once: a second start finds nothing to move and changes nothing.
	again, err := Open(dir)
	if err != nil || !reflect.DeepEqual(again.Get(), want) {
		t.Errorf("second start %+v, %v", again.Get(), err)
	}

	// The node's own memory choice wins over the tray's copy of it.
	dir2 := t.TempDir()
	os.WriteFile(filepath.Join(dir2, "settings.json"), []byte(`{"share_memory": 1073741824}`), 0o600)
	os.WriteFile(filepath.Join(dir2, "tray.json"), []byte(`{"share_as":"bogus","memory":5}`), 0o600)
	s2, err := Open(dir2)
	if err != nil {
		t.Fatal(err)
	}
	if got := s2.Get(); got.ShareMemory != 1<<30 || got.ShareAs != "" {
		t.Errorf("kept %+v", got)
	}

	// A damaged tray.json is put aside, not lost, and the node starts.
	dir3 := t.TempDir()
	os.WriteFile(filepath.Join(dir3, "tray.json"), []byte(`{`), 0o600)
	if _, err := Open(dir3); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir3, "tray.json.damaged")); err != nil || string(b) != "{" {
		t.Errorf("damaged file: %q, %v", b, err)
	}
}

// A move keeps the tokens left behind, the last MaxPastTokens of them.
func TestMoveTo(t *testing.T) {
	var s Settings
	for i := range MaxPastTokens + 3 {
		s.MoveTo("next", string(rune('a'+i)))
	}
	s.MoveTo("next", "s") // again: not twice
	if s.Token != "next" || len(s.PastTokens) != MaxPastTokens || s.PastTokens[0] != "d" || s.PastTokens[MaxPastTokens-1] != "s" {
		t.Errorf("after the moves: %+v", s)
	}
}

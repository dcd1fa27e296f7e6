package atomicfile

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func validJSON(b []byte) error {
	var v map[string]any
	return json.Unmarshal(b, &v)
}

// WriteKeep keeps a backup copy; ReadValid falls back on it when the file
// is damaged, and says so; SetAside moves the damaged file where nothing
// writes over it.
func TestKeepAndRecover(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "settings.json")
	if data, d, err := ReadValid(name, validJSON); data != nil || d != nil || err != nil {
		t.Fatalf("missing file: %q %v %v", data, d, err)
	}
	for _, v := range []string{`{"v":1}`, `{"v":2}`} {
		if err := WriteKeep(name, []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if b, _ := os.ReadFile(Backup(name)); string(b) != `{"v":2}` {
		t.Errorf("backup %q", b)
	}
	if data, d, err := ReadValid(name, validJSON); string(data) != `{"v":2}` || d != nil || err != nil {
		t.Fatalf("good file: %q %v %v", data, d, err)
	}

	os.WriteFile(name, []byte("\x00\x00garbage"), 0o600)
	data, d, err := ReadValid(name, validJSON)
	if err != nil || d == nil || !d.FromBackup || string(data) != `{"v":2}` {
		t.Fatalf("damaged file: %q %v %v", data, d, err)
	}
	if !strings.Contains(d.Error(), "settings.json is damaged") {
		t.Errorf("damage says %q", d)
	}
	aside, err := SetAside(name)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(aside); string(b) != "\x00\x00garbage" {
		t.Errorf("set aside %q", b)
	}
	if err := WriteKeep(name, []byte(`{"v":3}`), 0o600); err != nil {
		t.Fatal(err)
	}

	// A second damaged file set aside in the same second keeps the first.
	os.WriteFile(name, []byte("again"), 0o600)
	again, err := SetAside(name)
	if err != nil || again == aside {
		t.Fatalf("second set aside: %q %v", again, err)
	}
	if b, _ := os.ReadFile(aside); string(b) != "\x00\x00garbage" {
		t.Errorf("the first damaged copy became %q", b)
	}
	WriteKeep(name, []byte(`{"v":4}`), 0o600)

	// Both damaged: no content, and the damage.
	os.WriteFile(name, []byte("{"), 0o600)
	os.WriteFile(Backup(name), []byte("}"), 0o600)
	if data, d, err := ReadValid(name, validJSON); data != nil || d == nil || d.FromBackup || err != nil {
		t.Fatalf("both damaged: %q %v %v", data, d, err)
	}
}

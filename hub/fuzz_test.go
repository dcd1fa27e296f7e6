package hub_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/potluck-gpu/potluck/hub"
)

// FuzzParseRef feeds ParseRef what a user, a web page or a peer could
// type. A reference it accepts names one repository and, if any, a .gguf
// file inside it, so that where the file goes stays inside the store.
func FuzzParseRef(f *testing.F) {
	for _, s := range []string{"hf.co/a/b:Q4_K_M", "a/b/c/d.gguf", "https://huggingface.co/a/b/resolve/main/x.gguf",
		"a/b@rev", "a/../b.gguf", "a/b/../../etc/x.gguf", "a/b/%2e%2e/x.gguf", "a/b/./x.gguf", "a/b//x.gguf"} {
		f.Add(s)
	}
	store := filepath.Join(f.TempDir(), "models")
	f.Fuzz(func(t *testing.T, s string) {
		r, err := hub.ParseRef(s)
		if err != nil {
			return
		}
		if strings.Count(r.Repo, "/") != 1 || strings.Contains(r.Repo, "..") || r.Rev == "" {
			t.Fatalf("ParseRef(%q) = %+v: not one repository", s, r)
		}
		if r.File != "" {
			if !strings.HasSuffix(strings.ToLower(r.File), ".gguf") {
				t.Fatalf("ParseRef(%q) = %+v: not a .gguf file", s, r)
			}
			dest, err := hub.Dest(store, hub.RemoteFile{Repo: r.Repo, Path: r.File})
			if err == nil && !strings.HasPrefix(dest, store+string(filepath.Separator)) {
				t.Fatalf("ParseRef(%q) = %+v puts the file at %s, outside the store", s, r, dest)
			}
		}
		if _, err := hub.ParseRef(r.String()); err != nil {
			t.Fatalf("ParseRef(%q) = %+v, whose String %q does not parse: %v", s, r, r.String(), err)
		}
	})
}

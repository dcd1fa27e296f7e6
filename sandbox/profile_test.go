package sandbox

import (
	"strings"
	"testing"
)

// The macOS profile denies by default and grants exactly the policy: its
// program, its model read-only, its cache, its own port; no home folder,
// no process of its own making, no other connection.
func TestProfile(t *testing.T) {
	p := Policy{
		Exec: []string{"/Applications/Potluck.app/llama/llama-server"}, Read: []string{"/Users/ann/models/m.gguf"},
		Write: []string{"/Users/ann/Library/Application Support/potluck/sandbox"}, Bind: []uint16{41000}, Connect: []uint16{41001}, System: true,
	}
	prof := Profile(p)
	for _, want := range []string{
		"(deny default)",
		`(allow process-exec (literal "/Applications/Potluck.app/llama/llama-server"))`,
		`(allow file-read* (subpath "/Users/ann/models/m.gguf"))`,
		`(allow file-read* file-write* (subpath "/Users/ann/Library/Application Support/potluck/sandbox"))`,
		`(allow network-bind network-inbound (local ip "localhost:41000"))`,
		`(allow network-outbound (remote ip "localhost:41001"))`,
		`(allow file-read* (subpath "/System/Library"))`,
	} {
		if !strings.Contains(prof, want) {
			t.Errorf("the profile lacks %s:\n%s", want, prof)
		}
	}
	for _, never := range []string{"process-fork", `(subpath "/Users/ann")`, `(subpath "/")`, "network*", "(allow default)"} {
		if strings.Contains(prof, never) {
			t.Errorf("the profile grants %s:\n%s", never, prof)
		}
	}
	if strings.Contains(Profile(Policy{Read: []string{`/odd "path"`}}), `"/odd "path""`) {
		t.Error("a path with quotes is written unquoted")
	}
}

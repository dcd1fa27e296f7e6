package netmesh

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// A damaged address book is set aside and its backup copy used, and the
// node says so; with no good copy it starts empty.
func TestDamagedBook(t *testing.T) {
	dir := t.TempDir()
	priv, _, _ := crypto.GenerateEd25519Key(nil)
	id, _ := peer.IDFromPrivateKey(priv)
	b, damage := loadBook(dir, "net")
	if damage != "" {
		t.Fatalf("a missing book: %q", damage)
	}
	b.note(id.String(), "alice", []string{"/ip4/192.0.2.1/tcp/4101"}, time.Now())
	if err := b.save(); err != nil {
		t.Fatal(err)
	}
	b.note(id.String(), "alice", []string{"/ip4/192.0.2.2/tcp/4101"}, time.Now())
	if err := b.save(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, bookFile)
	os.WriteFile(path, []byte(`{"network":`), 0o600)

	b, damage = loadBook(dir, "net")
	if !strings.Contains(damage, "damaged") || !strings.Contains(damage, "kept as") {
		t.Errorf("damage %q", damage)
	}
	if e, ok := b.peers[id.String()]; !ok || len(e.Addrs) == 0 || !strings.Contains(strings.Join(e.Addrs, " "), "/ip4/192.0.2.2/tcp/4101") {
		t.Errorf("recovered book %+v; want alice as last saved", b.peers)
	}
	if m, _ := filepath.Glob(path + ".damaged-*"); len(m) != 1 {
		t.Errorf("damaged copies %v", m)
	}

	os.WriteFile(path, []byte("{"), 0o600)
	os.WriteFile(path+".backup", []byte("}"), 0o600)
	b, damage = loadBook(dir, "net")
	if len(b.peers) != 0 || !strings.Contains(damage, "found again") {
		t.Errorf("both damaged: %d peers, %q", len(b.peers), damage)
	}
}

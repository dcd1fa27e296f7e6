package netmesh_test

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"github.com/potluck-gpu/potluck/internal/atomicfile"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/mudler/edgevpn/pkg/node"
	"github.com/potluck-gpu/potluck/netmesh"
	"gopkg.in/yaml.v2"
)

func mustToken(t testing.TB) string {
	t.Helper()
	tok, err := netmesh.NewToken()
	if err != nil {
		t.Fatalf("NewToken: %v", err)
	}
	return tok
}

func decodeYAML(t *testing.T, tok string) node.YAMLConnectionConfig {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(tok)
	if err != nil {
		t.Fatalf("token is not base64: %v", err)
	}
	var c node.YAMLConnectionConfig
	if err := yaml.Unmarshal(raw, &c); err != nil {
		t.Fatalf("token is not EdgeVPN YAML: %v", err)
	}
	return c
}

func TestNewTokenIsEdgeVPNFormat(t *testing.T) {
	tok := mustToken(t)
	c := decodeYAML(t, tok)
	secrets := []string{c.RoomName, c.Rendezvous, c.MDNS, c.OTP.DHT.Key, c.OTP.Crypto.Key}
	seen := map[string]bool{}
	for _, s := range secrets {
		if len(s) != 43 {
			t.Errorf("secret has length %d, want 43", len(s))
		}
		if seen[s] {
			t.Errorf("secrets repeat")
		}
		seen[s] = true
	}
	if c.OTP.DHT.Interval != 9000 || c.OTP.Crypto.Interval != 9000 || c.OTP.DHT.Length != 43 || c.OTP.Crypto.Length != 43 {
		t.Errorf("otp = %+v, want EdgeVPN's defaults", c.OTP)
	}
	if c.MaxMessageSize != 20<<20 {
		t.Errorf("max_message_size = %d", c.MaxMessageSize)
	}
	if tok2 := mustToken(t); tok2 == tok {
		t.Error("two tokens are equal")
	}

	// EdgeVPN itself accepts it.
	var cfg node.Config
	if err := node.FromBase64(false, false, tok, nil, nil)(&cfg); err != nil {
		t.Fatalf("EdgeVPN rejects the token: %v", err)
	}
	if cfg.RoomName != c.RoomName || cfg.ExchangeKey != c.OTP.Crypto.Key {
		t.Errorf("EdgeVPN read a different config")
	}
}

func TestParseTokenRoundTrip(t *testing.T) {
	tok := mustToken(t)
	p, err := netmesh.ParseToken(tok)
	if err != nil {
		t.Fatalf("ParseToken: %v", err)
	}
	enc, err := p.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if enc != tok {
		t.Errorf("Encode differs from the parsed token")
	}
}

// A token as produced by EdgeVPN's own generator must parse.
func TestParseEdgeVPNToken(t *testing.T) {
	tok := node.GenerateNewConnectionData().Base64()
	if _, err := netmesh.ParseToken(tok); err != nil {
		t.Fatalf("ParseToken(EdgeVPN token): %v", err)
	}
}

func TestParseTokenTolerates(t *testing.T) {
	tok := mustToken(t)
	want, _ := netmesh.ParseToken(tok)
	wrapped := func(s string, n int) string {
		var b strings.Builder
		for len(s) > n {
			b.WriteString(s[:n] + "\r\n")
			s = s[n:]
		}
		return b.String() + s
	}
	tests := map[string]string{
		"surrounding whitespace": "  \n\t" + tok + "\n\n ",
		"trailing newline":       tok + "\n",
		"wrapped lines":          wrapped(tok, 76),
		"no padding":             strings.TrimRight(tok, "="),
		"url alphabet":           strings.NewReplacer("+", "-", "/", "_").Replace(tok),
	}
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := netmesh.ParseToken(in)
			if err != nil {
				t.Fatalf("ParseToken: %v", err)
			}
			if got.Fingerprint() != want.Fingerprint() {
				t.Errorf("parsed a different token")
			}
		})
	}
}

func encodeYAML(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestParseTokenRejects(t *testing.T) {
	tok := mustToken(t)
	good := decodeYAML(t, tok)
	withConfig := func(f func(c *node.YAMLConnectionConfig)) string {
		c := good
		f(&c)
		return c.Base64()
	}
	tests := []struct {
		name, in, wantErr string
	}{
		{"empty", "", "empty"},
		{"whitespace", " \n\t ", "empty"},
		{"not base64", "this is not a token!", "not valid base64"},
		{"cut mid-quantum", tok[:len(tok)/2+1], "cut off"},
		{"cut in half", tok[:len(tok)/2], "cut off"},
		{"first characters only", tok[:8], "cut off"},
		{"one character", "Q", "cut off"},
		{"base64 of nothing useful", encodeYAML("hello"), "not a valid connection config"},
		{"base64 of spaces", encodeYAML("   \n"), "decodes to nothing"},
		{"yaml without secrets", encodeYAML("room: abc\n"), "incomplete"},
		{"yaml list", encodeYAML("- a\n- b\n"), "wrong structure"},
		{"binary", base64.StdEncoding.EncodeToString([]byte{0, 1, 2, 0xff, 0xfe}), "not a valid connection config"},
		{"zero interval", withConfig(func(c *node.YAMLConnectionConfig) { c.OTP.Crypto.Interval = 0 }), "otp.crypto.interval"},
		{"negative interval", withConfig(func(c *node.YAMLConnectionConfig) { c.OTP.DHT.Interval = -5 }), "otp.dht.interval"},
		{"otp length too long", withConfig(func(c *node.YAMLConnectionConfig) { c.OTP.Crypto.Length = 45 }), "otp.crypto.length"},
		{"otp length zero", withConfig(func(c *node.YAMLConnectionConfig) { c.OTP.DHT.Length = 0 }), "otp.dht.length"},
		{"no message size", withConfig(func(c *node.YAMLConnectionConfig) { c.MaxMessageSize = 0 }), "max_message_size"},
		{"missing room", withConfig(func(c *node.YAMLConnectionConfig) { c.RoomName = "" }), "no room"},
		{"huge", strings.Repeat("A", 1<<20), "too long"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := netmesh.ParseToken(tt.in)
			if err == nil {
				t.Fatalf("ParseToken accepted %q", short(tt.in))
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not mention %q", err, tt.wantErr)
			}
			if len(tt.in) >= 8 && strings.Contains(err.Error(), strings.TrimSpace(tt.in)) {
				t.Errorf("error %q repeats the token", err)
			}
		})
	}
}

func short(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

func TestTokenNeverPrintsSecrets(t *testing.T) {
	tok := mustToken(t)
	p, err := netmesh.ParseToken(tok)
	if err != nil {
		t.Fatal(err)
	}
	c := decodeYAML(t, tok)
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("joined", "token", p)
	slog.New(slog.NewTextHandler(&logged, nil)).Info("joined", "token", p)
	outputs := []string{
		fmt.Sprint(p), fmt.Sprintf("%v %+v %#v %s %q", p, p, p, p, p),
		fmt.Sprintf("%+v", struct{ T netmesh.Token }{p}),
		logged.String(),
	}
	for _, out := range outputs {
		for _, secret := range []string{tok, c.RoomName, c.OTP.Crypto.Key, c.OTP.DHT.Key, c.MDNS, c.Rendezvous} {
			if strings.Contains(out, secret) {
				t.Fatalf("output leaks a secret: %s", out)
			}
		}
		if !strings.Contains(out, p.Fingerprint()) {
			t.Errorf("output %q lacks the fingerprint", out)
		}
	}
}

func FuzzParseToken(f *testing.F) {
	tok := mustToken(f)
	f.Add(tok)
	f.Add(" " + tok + "\n")
	f.Add(tok[:len(tok)/2])
	f.Add("")
	f.Add(encodeYAML("otp:\n  dht:\n    interval: 0\n"))
	f.Fuzz(func(t *testing.T, s string) {
		p, err := netmesh.ParseToken(s)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			if in := strings.TrimSpace(s); len(in) >= 16 && strings.Contains(err.Error(), in) {
				t.Fatalf("error %q repeats the input", err)
			}
			return
		}
		enc, err := p.Encode()
		if err != nil {
			t.Fatalf("Encode of a parsed token: %v", err)
		}
		again, err := netmesh.ParseToken(enc)
		if err != nil {
			t.Fatalf("re-parse of an encoded token: %v", err)
		}
		if again.Fingerprint() != p.Fingerprint() {
			t.Fatal("round trip changed the token")
		}
	})
}

// A token Potluck makes for a network it owns names the owner in a field
// EdgeVPN's own parser ignores; rotating it keeps the owner and changes
// every secret.
func TestOwnedToken(t *testing.T) {
	dir := t.TempDir()
	key, err := netmesh.OwnerKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := netmesh.OwnerKey(dir); err != nil || !again.Equals(key) {
		t.Fatalf("the owner key changed between loads: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(dir, netmesh.OwnerKeyFile)); err != nil || !atomicfile.Private(fi) {
		t.Fatalf("owner key file: %v %v", fi, err)
	}
	owner, _ := peer.IDFromPublicKey(key.GetPublic())
	enc, err := netmesh.NewOwnedToken(key.GetPublic())
	if err != nil {
		t.Fatal(err)
	}
	tok, err := netmesh.ParseToken(enc)
	if err != nil {
		t.Fatal(err)
	}
	if tok.Owner() != owner.String() {
		t.Errorf("owner = %q, want %s", tok.Owner(), owner)
	}

	// EdgeVPN's parser still reads it, to the same connection config.
	c := decodeYAML(t, enc)
	var cfg node.Config
	if err := node.FromBase64(false, false, enc, nil, nil)(&cfg); err != nil {
		t.Fatalf("EdgeVPN rejects an owned token: %v", err)
	}
	if cfg.RoomName != c.RoomName || cfg.ExchangeKey != c.OTP.Crypto.Key || c.RoomName == "" {
		t.Errorf("EdgeVPN read a different config")
	}

	next, err := tok.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	if next.Owner() != tok.Owner() || next.Fingerprint() == tok.Fingerprint() || next.Network() != tok.Network() {
		t.Errorf("rotated: owner %q fingerprint %s network %s, from %q %s %s", next.Owner(), next.Fingerprint(), next.Network(), tok.Owner(), tok.Fingerprint(), tok.Network())
	}
	// Another network of the same owner is another network.
	other, _ := netmesh.NewOwnedToken(key.GetPublic())
	if o, _ := netmesh.ParseToken(other); o.Network() == tok.Network() || o.Owner() != tok.Owner() {
		t.Errorf("two networks of one owner: %s %s", o.Network(), tok.Network())
	}

	// Tokens without an owner (EdgeVPN's, or NewToken) have none.
	for _, s := range []string{node.GenerateNewConnectionData().Base64(), mustToken(t)} {
		if p, err := netmesh.ParseToken(s); err != nil || p.Owner() != "" {
			t.Errorf("owner of an ownerless token = %q, %v", p.Owner(), err)
		}
	}
	// A mangled owner is refused, and the error does not repeat it.
	bad := encodeYAML(strings.Replace(string(mustDecode(t, enc)), owner.String(), "not-a-peer-id", 1))
	if _, err := netmesh.ParseToken(bad); err == nil || strings.Contains(err.Error(), "not-a-peer-id") {
		t.Errorf("mangled owner: %v", err)
	}
}

func mustDecode(t *testing.T, enc string) []byte {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// An invite carries members' addresses in a field EdgeVPN's parser
// ignores; they are hints, not the network: two invites that differ only
// in addresses open the same network.
func TestTokenAddrs(t *testing.T) {
	base, err := netmesh.ParseToken(mustToken(t))
	if err != nil {
		t.Fatal(err)
	}
	const id = "12D3KooWGzh8hnxxd3QX5ubT1pVXFMtBwEJQgoVzgTk3xnrKUyAG"
	addrs := []string{
		"/ip4/127.0.0.1/tcp/4101/p2p/" + id,
		"/ip4/11.77.0.10/tcp/4101/p2p/" + id,
		"/ip4/11.77.0.10/tcp/4101/p2p/" + id, // a duplicate: dropped
		"/ip4/11.77.0.10/tcp/4101",           // no peer id: dropped
		"/ip4/11.77.0.10/tcp/4101/p2p/" + id + "/p2p-circuit/p2p/" + id,
	}
	with := base.WithAddrs(addrs)
	enc, err := with.Encode()
	if err != nil {
		t.Fatal(err)
	}
	back, err := netmesh.ParseToken(enc)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{addrs[0], addrs[1], addrs[4]}
	if got := back.Addrs(); !slices.Equal(got, want) {
		t.Errorf("addrs = %q, want %q", got, want)
	}
	if !back.SameNetwork(base) || back.Fingerprint() != base.Fingerprint() || back == base {
		t.Error("an invite with addresses is not the same network as the bare token")
	}
	other, _ := netmesh.ParseToken(mustToken(t))
	if other.WithAddrs(addrs).SameNetwork(back) {
		t.Error("two networks with the same addresses count as one")
	}
	// EdgeVPN's own parser reads it, to the same connection config.
	c := decodeYAML(t, enc)
	var cfg node.Config
	if err := node.FromBase64(false, false, enc, nil, nil)(&cfg); err != nil {
		t.Fatalf("EdgeVPN rejects an invite with addresses: %v", err)
	}
	if cfg.RoomName != c.RoomName || cfg.ExchangeKey != c.OTP.Crypto.Key || c.RoomName == "" {
		t.Errorf("EdgeVPN read a different config")
	}
	// A mangled address is refused.
	bad := encodeYAML(strings.Replace(string(mustDecode(t, enc)), "/ip4/127.0.0.1/tcp/4101/p2p/", "/ip4/127.0.0.1/tcpx/", 1))
	if _, err := netmesh.ParseToken(bad); err == nil {
		t.Error("a mangled address was accepted")
	}
	if got := base.WithAddrs(nil).Addrs(); got != nil {
		t.Errorf("WithAddrs(nil) kept %q", got)
	}
}

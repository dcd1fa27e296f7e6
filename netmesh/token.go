package netmesh

import (
	"bytes"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/mudler/edgevpn/pkg/node"
	"gopkg.in/yaml.v2"
)

// Token defaults, matching EdgeVPN's generator so tokens are interchangeable.
const (
	tokenKeyLength      = 43
	tokenOTPInterval    = 9000     // seconds between key rotations
	tokenMaxMessageSize = 20 << 20 // bytes
	maxTokenLength      = 64 << 10 // a pasted token longer than this is not a token

	// maxOTPLength bounds otp.*.length: EdgeVPN slices the base64 of a SHA-256
	// digest (44 characters) to that length and panics beyond it.
	maxOTPLength = 44
)

// ErrEmptyToken is returned by ParseToken for empty or all-whitespace input.
var ErrEmptyToken = errors.New("token is empty")

// Token is a parsed invite token: the EdgeVPN connection config shared by
// every member of a mesh. It never prints its secrets: String, GoString and
// LogValue show only a fingerprint.
//
// A token Potluck made for a new network also names the network's owner
// (the peer ID of the owner key, see OwnerKey), in a field EdgeVPN's own
// parser ignores. Only the owner can remove members.
//
// An invite may also carry addresses of members to dial first (see
// WithAddrs). They are hints, not part of the network's identity: two
// tokens that differ only in their addresses open the same network.
type Token struct {
	cfg     node.YAMLConnectionConfig
	owner   string // peer ID of the owner key; empty: no owner
	network string // the network's id, the same across rotations; empty for tokens without an owner
	addrs   string // members' addresses, newline-separated (a string keeps Token comparable)
}

// tokenYAML is the wire form: EdgeVPN's config plus Potluck's own fields.
type tokenYAML struct {
	node.YAMLConnectionConfig `yaml:",inline"`
	Owner                     string   `yaml:"potluck_owner,omitempty"`
	Network                   string   `yaml:"potluck_network,omitempty"`
	Addrs                     []string `yaml:"potluck_addrs,omitempty"`
}

// maxTokenAddrs bounds the addresses an invite carries.
const maxTokenAddrs = 32

var (
	_ fmt.Stringer   = Token{}
	_ fmt.GoStringer = Token{}
	_ slog.LogValuer = Token{}
)

// NewToken returns a fresh invite token in EdgeVPN's format (base64 of its YAML
// connection config) with every secret drawn from crypto/rand. The network
// has no owner: see NewOwnedToken.
func NewToken() (string, error) {
	t, err := freshToken("")
	if err != nil {
		return "", err
	}
	return t.Encode()
}

// NewOwnedToken returns a fresh invite token for a network owned by the
// holder of owner (see LoadOwnerKey).
func NewOwnedToken(owner crypto.PubKey) (string, error) {
	id, err := peer.IDFromPublicKey(owner)
	if err != nil {
		return "", fmt.Errorf("owner key: %w", err)
	}
	t, err := freshToken(id.String())
	if err != nil {
		return "", err
	}
	if t.network, err = randomString(16); err != nil {
		return "", err
	}
	return t.Encode()
}

// Rotate returns a new token for the same network: fresh secrets, the same
// owner. Holders of t cannot open the new one.
func (t Token) Rotate() (Token, error) {
	next, err := freshToken(t.owner)
	next.network = t.network
	return next, err
}

// Network names the network across token rotations: an id Potluck drew
// when it made the network, or for a token without one, the token's
// fingerprint.
func (t Token) Network() string {
	if t.network != "" {
		return t.network
	}
	return t.Fingerprint()
}

// Owner is the peer ID of the network's owner key, or "" for a network
// without one (a token made by EdgeVPN, LocalAI or an older Potluck).
func (t Token) Owner() string { return t.owner }

func freshToken(owner string) (Token, error) {
	secrets := make([]string, 5)
	for i := range secrets {
		s, err := randomString(tokenKeyLength)
		if err != nil {
			return Token{}, fmt.Errorf("generate token: %w", err)
		}
		secrets[i] = s
	}
	return Token{owner: owner, cfg: node.YAMLConnectionConfig{
		RoomName:       secrets[0],
		Rendezvous:     secrets[1],
		MDNS:           secrets[2],
		MaxMessageSize: tokenMaxMessageSize,
		OTP: node.OTP{
			DHT:    node.OTPConfig{Key: secrets[3], Interval: tokenOTPInterval, Length: tokenKeyLength},
			Crypto: node.OTPConfig{Key: secrets[4], Interval: tokenOTPInterval, Length: tokenKeyLength},
		},
	}}, nil
}

// ParseToken validates a pasted token. Surrounding whitespace and line breaks
// (also inside the token, as mail clients wrap long lines) are ignored; base64
// padding may be missing. The error says what is wrong and never contains the
// token itself.
func ParseToken(s string) (t Token, err error) {
	if len(s) > maxTokenLength {
		return Token{}, fmt.Errorf("token is too long (%d bytes): it is not an invite token", len(s))
	}
	s = strings.Join(strings.Fields(s), "")
	if s == "" {
		return Token{}, ErrEmptyToken
	}
	raw, err := decodeBase64(s)
	if err != nil {
		return Token{}, err
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return Token{}, errors.New("token decodes to nothing: it was probably cut off when copied")
	}
	// The YAML decoder is third-party code fed untrusted input: never let it
	// take the process down.
	defer func() {
		if r := recover(); r != nil {
			t, err = Token{}, errors.New("token is not a valid connection config (the YAML decoder failed)")
		}
	}()
	var w tokenYAML
	if err := yaml.Unmarshal(raw, &w); err != nil {
		return Token{}, fmt.Errorf("token is not a valid connection config (%s): it was probably cut off or mangled when copied", yamlProblem(err))
	}
	if err := validateConnectionConfig(w.YAMLConnectionConfig); err != nil {
		return Token{}, err
	}
	if w.Owner != "" {
		if _, err := peer.Decode(w.Owner); err != nil {
			return Token{}, errors.New("token names an owner that is not a peer ID: it was probably mangled when copied")
		}
	}
	if len(w.Network) > 64 {
		return Token{}, errors.New("token has an invalid network id: it was probably mangled when copied")
	}
	if len(w.Addrs) > maxTokenAddrs {
		return Token{}, fmt.Errorf("token carries %d addresses (at most %d): it was not made by Potluck", len(w.Addrs), maxTokenAddrs)
	}
	for _, a := range w.Addrs {
		if _, err := peer.AddrInfoFromString(a); err != nil {
			return Token{}, errors.New("token carries an address that is not a peer address: it was probably mangled when copied")
		}
	}
	return Token{cfg: w.YAMLConnectionConfig, owner: w.Owner, network: w.Network, addrs: strings.Join(w.Addrs, "\n")}, nil
}

func decodeBase64(s string) ([]byte, error) {
	enc := base64.StdEncoding
	if strings.ContainsAny(s, "-_") {
		enc = base64.URLEncoding
	}
	if !strings.HasSuffix(s, "=") && len(s)%4 != 0 {
		enc = enc.WithPadding(base64.NoPadding)
	}
	raw, err := enc.DecodeString(s)
	var corrupt base64.CorruptInputError
	switch {
	case err == nil:
		return raw, nil
	case errors.As(err, &corrupt) && int(corrupt) >= len(s)-2:
		return nil, errors.New("token is not valid base64: it ends early, so it was probably cut off when copied")
	case errors.As(err, &corrupt):
		return nil, fmt.Errorf("token is not valid base64: unexpected character at position %d", int(corrupt)+1)
	default:
		return nil, errors.New("token is not valid base64")
	}
}

// yamlProblem describes a YAML error without quoting any of the input (the
// decoder's messages can contain token content).
func yamlProblem(err error) string {
	msg := err.Error()
	if strings.Contains(msg, "cannot unmarshal") {
		return "wrong structure"
	}
	var line int
	if i := strings.Index(msg, "line "); i >= 0 {
		fmt.Sscanf(msg[i:], "line %d", &line)
	}
	if line > 0 {
		return fmt.Sprintf("YAML error at line %d", line)
	}
	return "YAML error"
}

func validateConnectionConfig(c node.YAMLConnectionConfig) error {
	var missing []string
	for _, f := range []struct{ name, v string }{
		{"room", c.RoomName},
		{"rendezvous", c.Rendezvous},
		{"mdns", c.MDNS},
		{"otp.dht.key", c.OTP.DHT.Key},
		{"otp.crypto.key", c.OTP.Crypto.Key},
	} {
		if strings.TrimSpace(f.v) == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("token is incomplete (no %s): it was probably cut off when copied", strings.Join(missing, ", "))
	}
	for _, o := range []struct {
		name string
		c    node.OTPConfig
	}{{"otp.dht", c.OTP.DHT}, {"otp.crypto", c.OTP.Crypto}} {
		if o.c.Interval <= 0 {
			return fmt.Errorf("token has an invalid %s.interval (%d): it must be positive", o.name, o.c.Interval)
		}
		if o.c.Length <= 0 || o.c.Length > maxOTPLength {
			return fmt.Errorf("token has an invalid %s.length (%d): it must be 1..%d", o.name, o.c.Length, maxOTPLength)
		}
	}
	if c.MaxMessageSize <= 0 || c.MaxMessageSize > 1<<30 {
		return fmt.Errorf("token has an invalid max_message_size (%d)", c.MaxMessageSize)
	}
	return nil
}

// Encode returns the token in EdgeVPN's wire format. The result is a secret.
func (t Token) Encode() (string, error) {
	b, err := yaml.Marshal(tokenYAML{YAMLConnectionConfig: t.cfg, Owner: t.owner, Network: t.network, Addrs: t.Addrs()})
	if err != nil {
		return "", fmt.Errorf("encode token: %w", err)
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

// Addrs are the member addresses the invite carries (full multiaddrs
// ending in /p2p/<id>), for a joining node to dial first.
func (t Token) Addrs() []string {
	if t.addrs == "" {
		return nil
	}
	return strings.Split(t.addrs, "\n")
}

// WithAddrs returns t carrying addrs (at most 32 are kept, in order;
// duplicates and addresses that are not full peer addresses are dropped).
// Nil or empty drops every address.
func (t Token) WithAddrs(addrs []string) Token {
	var keep []string
	seen := map[string]bool{}
	for _, a := range addrs {
		if len(keep) == maxTokenAddrs {
			break
		}
		if _, err := peer.AddrInfoFromString(a); err != nil || seen[a] {
			continue
		}
		seen[a] = true
		keep = append(keep, a)
	}
	t.addrs = strings.Join(keep, "\n")
	return t
}

// SameNetwork reports whether t and u hold the same secrets and owner: the
// addresses they carry do not count.
func (t Token) SameNetwork(u Token) bool {
	t.addrs, u.addrs = "", ""
	return t == u
}

// IsZero reports whether t is the zero Token (not parsed from anything).
func (t Token) IsZero() bool { return t == Token{} }

// Fingerprint is a short, non-secret digest of the token: two nodes show the
// same fingerprint exactly when they hold the same token.
func (t Token) Fingerprint() string {
	sum := sha256.Sum256(t.secretMaterial())
	return hex.EncodeToString(sum[:4])
}

// String redacts the token.
func (t Token) String() string {
	if t.IsZero() {
		return "token(none)"
	}
	return "token(" + t.Fingerprint() + ")"
}

// GoString redacts the token in %#v.
func (t Token) GoString() string { return "netmesh.Token{" + t.String() + "}" }

// LogValue redacts the token in structured logs.
func (t Token) LogValue() slog.Value { return slog.StringValue(t.String()) }

// secretMaterial is an unambiguous encoding of every secret in the token.
func (t Token) secretMaterial() []byte {
	var b bytes.Buffer
	for _, s := range []string{t.cfg.RoomName, t.cfg.Rendezvous, t.cfg.MDNS, t.cfg.OTP.DHT.Key, t.cfg.OTP.Crypto.Key} {
		fmt.Fprintf(&b, "%d:%s;", len(s), s)
	}
	return b.Bytes()
}

// handshakeKey derives the 32-byte value bound into every Noise handshake, so
// only holders of the same token can complete a connection.
func (t Token) handshakeKey() []byte {
	k, err := hkdf.Key(sha256.New, t.secretMaterial(), []byte("potluck netmesh"), "noise prologue v1", 32)
	if err != nil { // only for absurd lengths; 32 is fine
		panic(err)
	}
	return k
}

const tokenAlphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ1234567890"

// randomString draws n characters uniformly from tokenAlphabet using crypto/rand.
func randomString(n int) (string, error) {
	const limit = 256 - 256%len(tokenAlphabet) // reject bytes that would bias the result
	out := make([]byte, 0, n)
	buf := make([]byte, n+n/2)
	for len(out) < n {
		if _, err := rand.Read(buf); err != nil {
			return "", err
		}
		for _, c := range buf {
			if int(c) < limit && len(out) < n {
				out = append(out, tokenAlphabet[int(c)%len(tokenAlphabet)])
			}
		}
	}
	return string(out), nil
}

// derive returns 32 bytes derived from the token's secrets for purpose,
// e.g. the members' DHT protocol: the same for every member, unknowable
// to others.
func (t Token) derive(purpose string) []byte {
	k, err := hkdf.Key(sha256.New, t.secretMaterial(), []byte("potluck netmesh"), purpose, 32)
	if err != nil {
		panic(err)
	}
	return k
}

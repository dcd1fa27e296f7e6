package netmesh

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// Config configures a Node. Start from DefaultConfig, which turns mDNS on;
// apart from Token, zero fields take defaults in New.
type Config struct {
	// Token is the invite token (see NewToken). Required.
	Token string
	// DataDir keeps the node's identity. Empty means an ephemeral identity.
	DataDir string
	// Name is shown to other peers; it defaults to the hostname.
	Name string
	// ListenAddrs are libp2p multiaddrs to listen on; the default is TCP
	// port DefaultPort on every interface, or a random port when another
	// program holds that one.
	ListenAddrs []string
	// Bootstrap lists full multiaddrs (with /p2p/<id>) of peers to connect to,
	// and to keep connected to.
	Bootstrap []string
	// Known lists full multiaddrs of members to try when this node has no
	// connection (an invite's addresses). They join the address book kept
	// in DataDir, with the addresses the token itself carries.
	Known []string
	// DisableDHT turns off DHT rendezvous discovery.
	DisableDHT bool
	// MDNS enables LAN discovery (on in DefaultConfig).
	MDNS bool
	// EnableLimits turns on libp2p's resource manager with default limits.
	EnableLimits bool
	// Traversal turns on what lets members behind NATs reach each other
	// (on in DefaultConfig): AutoNAT (asking members whether this node is
	// reachable, and answering them), circuit relay v2 through members
	// that are reachable (served to members only, bounded), and hole
	// punching (DCUtR) that upgrades a relayed connection to a direct one.
	Traversal bool
	// PortMap asks the home router to forward the listen port (UPnP
	// IGD or NAT-PMP; on in DefaultConfig). It is never tried when the
	// node listens on loopback addresses only.
	PortMap bool
	// LogLevel is the least level (debug, info, warn, error) of messages from
	// the EdgeVPN library that reach the logger; the default is warn.
	LogLevel string
	// AppVersion is announced to peers.
	AppVersion string

	// Admit, when set, says whether a peer (by peer ID) may take part: a
	// peer it refuses is disconnected, never dialed, and its messages are
	// dropped. It is asked often and must be quick. Nil admits every
	// holder of the token.
	Admit func(peerID string) bool
	// OnNotice, when set, receives the notices other members publish with
	// Notify, with the signing member's peer ID. It runs on the mesh's
	// message loop: it must not block.
	OnNotice func(from string, payload []byte)
	// Tap, when set, sees every raw message of the mesh's sealed channel
	// before it is checked. For tools and tests.
	Tap func(message string)

	// HeartbeatInterval is how often the node announces itself. A peer that
	// misses about three of its heartbeats is offline. Default 5s.
	HeartbeatInterval time.Duration
	// RemoveAfter is how long an offline peer stays listed. Default 10m.
	RemoveAfter time.Duration
}

// Defaults.
const (
	DefaultHeartbeatInterval = 5 * time.Second
	DefaultRemoveAfter       = 10 * time.Minute

	missedHeartbeats = 3 // a peer is offline after missing this many heartbeats
)

// DefaultPort is the TCP port a node listens on unless told otherwise: a
// fixed port is one a user can forward on their router.
const DefaultPort = 4101

// DefaultListenAddrs are used when Config.ListenAddrs is empty.
var DefaultListenAddrs = []string{
	fmt.Sprintf("/ip4/0.0.0.0/tcp/%d", DefaultPort),
	fmt.Sprintf("/ip6/::/tcp/%d", DefaultPort),
}

// fallbackListenAddrs replace DefaultListenAddrs when DefaultPort is taken.
var fallbackListenAddrs = []string{"/ip4/0.0.0.0/tcp/0", "/ip6/::/tcp/0"}

// DefaultConfig returns the configuration of a node that joins the mesh of
// token with mDNS, the members' DHT, NAT traversal and port mapping on.
func DefaultConfig(token string) Config {
	return Config{
		Token:             token,
		MDNS:              true,
		Traversal:         true,
		PortMap:           true,
		HeartbeatInterval: DefaultHeartbeatInterval,
		RemoveAfter:       DefaultRemoveAfter,
	}
}

// withDefaults validates c and fills in defaults.
func (c Config) withDefaults() (Config, Token, error) {
	tok, err := ParseToken(c.Token)
	if err != nil {
		return c, Token{}, err
	}
	if c.Name == "" {
		if h, err := os.Hostname(); err == nil {
			c.Name = h
		}
	}
	if len(c.ListenAddrs) == 0 {
		c.ListenAddrs = DefaultListenAddrs
	}
	for _, a := range c.ListenAddrs {
		if _, err := ma.NewMultiaddr(a); err != nil {
			return c, Token{}, fmt.Errorf("listen address %q: %w", a, err)
		}
	}
	for _, a := range c.Bootstrap {
		if _, err := peer.AddrInfoFromString(a); err != nil {
			return c, Token{}, fmt.Errorf("bootstrap peer %q must be a multiaddr ending in /p2p/<peer id>: %w", a, err)
		}
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		return c, Token{}, err
	}
	if c.HeartbeatInterval <= 0 {
		c.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if c.HeartbeatInterval < 10*time.Millisecond {
		return c, Token{}, errors.New("heartbeat interval must be at least 10ms")
	}
	if c.RemoveAfter <= 0 {
		c.RemoveAfter = DefaultRemoveAfter
	}
	return c, tok, nil
}

func parseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "", "warn", "warning":
		return slog.LevelWarn, nil
	case "error", "fatal", "panic":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("unknown log level %q (want debug, info, warn or error)", s)
}

package netmesh

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/gologshim"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	tptu "github.com/libp2p/go-libp2p/p2p/net/upgrader"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
)

// libp2pOptions builds the host: TCP only (tunnels run markedly faster over TCP
// than over QUIC), Noise bound to the token, yamux, no relay, no NAT services.
func libp2pOptions(cfg Config, tok Token) ([]libp2p.Option, error) {
	prologue := tok.handshakeKey()
	secure := func(id protocol.ID, priv crypto.PrivKey, muxers []tptu.StreamMuxer) (*noise.SessionTransport, error) {
		t, err := noise.New(id, priv, muxers)
		if err != nil {
			return nil, err
		}
		// Both sides mix the prologue into the handshake hash: with another
		// token the handshake fails before any protocol is spoken.
		return t.WithSessionOptions(noise.Prologue(prologue))
	}

	var rm network.ResourceManager = &network.NullResourceManager{}
	if cfg.EnableLimits {
		limits := rcmgr.DefaultLimits
		libp2p.SetDefaultServiceLimits(&limits)
		m, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(limits.AutoScale()))
		if err != nil {
			return nil, fmt.Errorf("resource manager: %w", err)
		}
		rm = m
	}

	ua := "potluck"
	if cfg.AppVersion != "" {
		ua += "/" + cfg.AppVersion
	}
	return []libp2p.Option{
		libp2p.UserAgent(ua),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Security(noise.ID, secure),
		libp2p.Muxer(yamux.ID, yamuxTransport()),
		libp2p.DisableRelay(),
		libp2p.ResourceManager(rm),
		libp2p.NoListenAddrs, // Node.listen listens once the host is built

	}, nil
}

// yamuxTransport is libp2p's yamux tuned for tunnels. Frames (header
// included) fit one Noise message (65535 bytes less the 16-byte tag), so a
// full frame is sealed once instead of being split in two.
func yamuxTransport() *yamux.Transport {
	c := *yamux.DefaultTransport.Config()
	c.MaxMessageSize = 65535 - 16
	// Start every stream at the largest window. yamux grows windows only
	// when updates come faster than 4 RTTs, which on a fast LAN or loopback
	// leaves bulk transfers (model tensors) stalling on window updates; the
	// memory bound per stream is the same as after growing.
	c.InitialStreamWindowSize = c.MaxStreamWindowSize
	// The round trip yamux measures only grows windows, which start at
	// their largest: one measure when the connection opens is enough.
	// The default, every 30 s from both ends of every connection, is a
	// ping a second and more per member of a 50-member mesh, at idle.
	c.MeasureRTTInterval = time.Hour
	t := yamux.Transport(c)
	return &t
}

// RouteLibp2pLogs sends the logs of go-libp2p's subsystems, which otherwise go
// to stderr, to h. It changes process-wide state: only main should call it,
// before creating nodes.
func RouteLibp2pLogs(h slog.Handler) {
	gologshim.SetDefaultHandler(quietHandler{h})
}

// quietHandler drops libp2p's warnings that say nothing to a user: the
// connection gater warns of every relayed connection, whose address does
// not start with an IP address.
type quietHandler struct{ slog.Handler }

func (q quietHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "error converting multiaddr to IP addr" {
		return nil
	}
	return q.Handler.Handle(ctx, r)
}

func (q quietHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return quietHandler{q.Handler.WithAttrs(as)}
}

func (q quietHandler) WithGroup(name string) slog.Handler {
	return quietHandler{q.Handler.WithGroup(name)}
}

package app

import (
	"context"
	"slices"
	"time"

	"github.com/potluck-gpu/potluck/netmesh"
	"github.com/potluck-gpu/potluck/nodestate"
	"github.com/potluck-gpu/potluck/settings"
)

// movedFrom says whether token is one the network moved away from.
func movedFrom(s settings.Settings, token string) bool {
	tok, err := netmesh.ParseToken(token)
	if err != nil || s.Token == "" || s.Token == token {
		return false
	}
	return slices.Contains(s.PastTokens, tok.Fingerprint())
}

// modify changes the settings for what the node does by itself (joining,
// a removal, a handoff): a file that cannot be written is the user's to
// know of, and nothing to undo.
func (n *Node) modify(fn func(*settings.Settings)) {
	if err := n.settings.Modify(fn); err != nil {
		n.log.Warn("save settings", "err", err)
		n.warn(nodestate.Warning{Code: "settings", Severity: nodestate.SeverityWarning,
			Message: err.Error()})
		return
	}
	n.clearWarning("settings")
}

// announceSettings tells the faces each change of the settings: whoever
// made it, the status shows it. It also writes, every saveRetry, a change
// that could not be written (a full disk), and warns while it cannot.
func (n *Node) announceSettings(ctx context.Context) {
	changed, cancel := n.settings.Subscribe()
	defer cancel()
	retry := time.NewTicker(saveRetry)
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-changed:
			n.events.publish(nodestate.Event{Kind: nodestate.EventStatus})
		case <-retry.C:
			n.savedAgain("settings", n.settings.Retry())
		}
	}
}

// saveRetry is how often a file the node could not write is tried again.
const saveRetry = 10 * time.Second

// savedAgain warns, under code, while a file cannot be saved (err says
// which), and clears the warning once it is.
func (n *Node) savedAgain(code string, err error) {
	if err != nil {
		n.log.Warn("cannot save", "err", err)
		n.warn(nodestate.Warning{Code: code, Severity: nodestate.SeverityWarning,
			Message: err.Error() + "; trying again every " + saveRetry.String()})
		return
	}
	n.clearWarning(code)
}

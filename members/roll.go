// Package members keeps the roll of a Potluck network: every machine this
// node has met in it, when it was first and last seen, and where it was last
// reachable. It also decides what the owner's signed decisions about members
// mean: a Removal drops a member and moves everyone else to a new token that
// the removed machine never sees (Roll.Remove plans one, Removal.Verdict says
// what one received means for this computer), and a Handoff keeps the network
// left behind handing the removal to the members that have not moved yet.
// What it needs of the mesh comes through small interfaces (Opener, Peers,
// Network) that a netmesh.Node satisfies; the node's sessions stay with the
// caller.
//
// The roll lives in <data-dir>/members.json (mode 0600). Each node keeps its
// own; they agree because they are fed by the same signed heartbeats.
package members

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/potluck-gpu/potluck/internal/atomicfile"
)

// File is the roll's file inside the data dir.
const File = "members.json"

// maxMembers bounds the roll: a network of friends is small, and a file
// that grew without bound would be read at every start.
const maxMembers = 1000

// Member is one machine of the network as this node knows it.
type Member struct {
	PeerID    string    `json:"peer_id"`
	Name      string    `json:"name"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	// Addrs are the addresses it last announced, to reach it again.
	Addrs []string `json:"addrs,omitempty"`
	// SealKey is its announced key for secrets sent to it alone.
	SealKey string `json:"seal_key,omitempty"`
	// Removed is when the owner removed it; zero for a member.
	Removed time.Time `json:"removed,omitzero"`
}

// IsRemoved says whether the owner removed the member.
func (m Member) IsRemoved() bool { return !m.Removed.IsZero() }

// Roll is the list of members of one network.
type Roll struct {
	path string

	mu      sync.Mutex
	network string // the network's id: its owner, or its token's fingerprint
	members map[string]*Member
	dirty   bool
}

type rollFile struct {
	Network string    `json:"network"`
	Members []*Member `json:"members"`
}

// Open reads the roll kept in dir; a missing file is an empty roll. A
// damaged file is set aside (renamed with a .damaged suffix) rather than
// stopping the node: the roll is rebuilt as members are seen again.
func Open(dir string) (*Roll, error) {
	r := &Roll{path: filepath.Join(dir, File), members: map[string]*Member{}}
	data, err := os.ReadFile(r.path)
	if errors.Is(err, fs.ErrNotExist) {
		return r, nil
	}
	if err != nil {
		return nil, fmt.Errorf("members: %w", err)
	}
	var f rollFile
	if err := json.Unmarshal(data, &f); err != nil {
		aside := r.path + ".damaged"
		if rerr := os.Rename(r.path, aside); rerr != nil {
			return nil, fmt.Errorf("%s is damaged (%v) and could not be moved away: %w", r.path, err, rerr)
		}
		return r, fmt.Errorf("%s was damaged (%v): moved it to %s and started a new list", r.path, err, aside)
	}
	r.network = f.Network
	for _, m := range f.Members {
		if m != nil && m.PeerID != "" && len(r.members) < maxMembers {
			r.members[m.PeerID] = m
		}
	}
	return r, nil
}

// UseNetwork makes the roll the roll of network: when it was another
// network's, it starts empty.
func (r *Roll) UseNetwork(network string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.network == network {
		return
	}
	r.network = network
	r.members = map[string]*Member{}
	r.dirty = true
}

// Seen records that m was seen at now: it adds a new member or updates its
// name, addresses and key. A removed member stays removed.
func (r *Roll) Seen(m Member, now time.Time) {
	if m.PeerID == "" {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	cur, ok := r.members[m.PeerID]
	if !ok {
		if len(r.members) >= maxMembers {
			r.evictOldestLocked()
		}
		cur = &Member{PeerID: m.PeerID, FirstSeen: now}
		r.members[m.PeerID] = cur
	}
	if m.Name != "" {
		cur.Name = m.Name
	}
	if len(m.Addrs) > 0 {
		cur.Addrs = slices.Clone(m.Addrs)
	}
	if m.SealKey != "" {
		cur.SealKey = m.SealKey
	}
	if now.After(cur.LastSeen) {
		cur.LastSeen = now
	}
	r.dirty = true
}

// evictOldestLocked drops the member seen longest ago.
func (r *Roll) evictOldestLocked() {
	var oldest *Member
	for _, m := range r.members {
		if oldest == nil || m.LastSeen.Before(oldest.LastSeen) {
			oldest = m
		}
	}
	if oldest != nil {
		delete(r.members, oldest.PeerID)
	}
}

// MarkRemoved records that the owner removed the members with these ids.
func (r *Roll) MarkRemoved(at time.Time, ids ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, id := range ids {
		m, ok := r.members[id]
		if !ok {
			m = &Member{PeerID: id, FirstSeen: at, LastSeen: at}
			r.members[id] = m
		}
		if m.Removed.IsZero() {
			m.Removed = at
			r.dirty = true
		}
	}
}

// IsRemoved says whether the owner removed the member with this id.
func (r *Roll) IsRemoved(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	m, ok := r.members[id]
	return ok && m.IsRemoved()
}

// Get returns one member by peer id.
func (r *Roll) Get(id string) (Member, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m, ok := r.members[id]
	if !ok {
		return Member{}, false
	}
	return clone(m), true
}

// List returns every member, removed ones included, by name.
func (r *Roll) List() []Member {
	r.mu.Lock()
	out := make([]Member, 0, len(r.members))
	for _, m := range r.members {
		out = append(out, clone(m))
	}
	r.mu.Unlock()
	slices.SortFunc(out, func(a, b Member) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return strings.Compare(a.PeerID, b.PeerID)
	})
	return out
}

// Find returns the member a person means by who: a peer id, or a name
// (case-insensitive) that only one member has.
func (r *Roll) Find(who string) (Member, error) {
	who = strings.TrimSpace(who)
	if who == "" {
		return Member{}, &NotFoundError{Who: who}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if m, ok := r.members[who]; ok {
		return clone(m), nil
	}
	var found []*Member
	for _, m := range r.members {
		if strings.EqualFold(m.Name, who) {
			found = append(found, m)
		}
	}
	switch len(found) {
	case 0:
		var names []string
		for _, m := range r.members {
			if !m.IsRemoved() {
				names = append(names, m.Name)
			}
		}
		slices.Sort(names)
		return Member{}, &NotFoundError{Who: who, Known: names}
	case 1:
		return clone(found[0]), nil
	}
	var ids []string
	for _, m := range found {
		ids = append(ids, m.PeerID)
	}
	slices.Sort(ids)
	return Member{}, fmt.Errorf("%d members are called %q: name one by its peer id (%s)", len(found), who, strings.Join(ids, ", "))
}

// NotFoundError is a member nobody has seen.
type NotFoundError struct {
	Who   string
	Known []string
}

func (e *NotFoundError) Error() string {
	if len(e.Known) == 0 {
		return fmt.Sprintf("no member %q: this computer has met no other member yet", e.Who)
	}
	return fmt.Sprintf("no member %q; the members are: %s", e.Who, strings.Join(e.Known, ", "))
}

// InvalidInput marks the error as the client's (HTTP 400).
func (e *NotFoundError) InvalidInput() bool { return true }

// Save writes the roll if it changed since the last Save.
func (r *Roll) Save() error {
	r.mu.Lock()
	if !r.dirty {
		r.mu.Unlock()
		return nil
	}
	f := rollFile{Network: r.network}
	for _, m := range r.members {
		c := clone(m)
		f.Members = append(f.Members, &c)
	}
	r.dirty = false
	r.mu.Unlock()
	slices.SortFunc(f.Members, func(a, b *Member) int { return strings.Compare(a.PeerID, b.PeerID) })
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(r.path, append(data, '\n'), 0o600); err != nil {
		r.mu.Lock()
		r.dirty = true
		r.mu.Unlock()
		return fmt.Errorf("save members: %w", err)
	}
	return nil
}

func clone(m *Member) Member {
	c := *m
	c.Addrs = slices.Clone(m.Addrs)
	return c
}

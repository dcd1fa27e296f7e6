// Package ledger keeps the pool's accounts: which node served whom, how
// many tokens, and when. Each node records the requests its model serves
// (a split's share goes to every node in it, in proportion to its layers),
// keeps the records of the last week and daily totals for ever, and
// publishes its totals to the network, signed by the mesh, so that every
// member computes the same accounts from the same records.
package ledger

import (
	"encoding/json"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/potluck-gpu/potluck/internal/atomicfile"
)

// File is the ledger's file in the data dir.
const File = "ledger.json"

const (
	keepRecords = 7 * 24 * time.Hour // single requests are kept this long
	maxRecords  = 20000              // and at most this many
	keepDays    = 400                // daily totals older than this fold into "before"
	publishDays = 8                  // days a publication carries one by one
)

// Share is one serving node's part of a request.
type Share struct {
	Node     string  `json:"node"`     // peer id
	Fraction float64 `json:"fraction"` // of the request's tokens
}

// Record is one request served by this node's model.
type Record struct {
	Time      time.Time `json:"time"`
	Asker     string    `json:"asker"` // peer id of the node that asked
	Model     string    `json:"model,omitempty"`
	TokensIn  int       `json:"tokens_in"`
	TokensOut int       `json:"tokens_out"`
	Servers   []Share   `json:"servers"`
}

// Totals are tokens and requests.
type Totals struct {
	Requests  float64 `json:"requests"`
	TokensIn  float64 `json:"tokens_in"`
	TokensOut float64 `json:"tokens_out"`
}

// Tokens is in and out together.
func (t Totals) Tokens() float64 { return t.TokensIn + t.TokensOut }

func (t *Totals) add(u Totals) {
	t.Requests += u.Requests
	t.TokensIn += u.TokensIn
	t.TokensOut += u.TokensOut
}

// Pair names who served whom.
type Pair struct {
	Server string `json:"server"`
	Asker  string `json:"asker"`
}

// DayTotals are one recorder's totals of one UTC day ("2006-01-02"), by
// pair.
type DayTotals map[string]map[Pair]Totals

// Publication is what a node tells the network: the totals of the requests
// it recorded, day by day for the last days, and everything before in one.
type Publication struct {
	Kind   string         `json:"potluck_ledger"` // "v1"
	Days   []PublishedDay `json:"days"`
	Before []PairTotals   `json:"before,omitempty"` // every day before Days
}

// PublishedDay is one day of a Publication.
type PublishedDay struct {
	Day   string       `json:"day"`
	Pairs []PairTotals `json:"pairs"`
}

// PairTotals is one pair's totals.
type PairTotals struct {
	Pair
	Totals
}

type fileDoc struct {
	Records []Record                `json:"records"`
	Days    map[string][]PairTotals `json:"days"`
	Before  []PairTotals            `json:"before,omitempty"`
}

// Ledger is one node's accounts. Its methods are safe for concurrent use.
type Ledger struct {
	path      string
	recovered string // see Recovered
	now       func() time.Time

	mu      sync.Mutex
	records []Record
	days    DayTotals               // what this node recorded
	before  map[Pair]Totals         // recorded before the oldest day kept
	others  map[string]*Publication // the last publication of every other node
	dirty   bool
	changed bool // since the last publication
}

// Open reads the ledger in dir (empty: kept in memory only). A missing
// file is an empty ledger; an unreadable one is an error.
func Open(dir string) (*Ledger, error) {
	l := &Ledger{now: time.Now, days: DayTotals{}, before: map[Pair]Totals{}, others: map[string]*Publication{}}
	if dir == "" {
		return l, nil
	}
	l.path = filepath.Join(dir, File)
	var doc fileDoc
	valid := func(b []byte) error {
		var d fileDoc
		return json.Unmarshal(b, &d)
	}
	raw, d, err := atomicfile.ReadValid(l.path, valid)
	if err != nil {
		return nil, err
	}
	if d != nil {
		// Set aside, never written over: the accounts go on from the
		// backup copy, or from nothing.
		aside, err := atomicfile.SetAside(l.path)
		if err != nil {
			return nil, fmt.Errorf("ledger: %v, and it cannot be moved aside: %w", d, err)
		}
		l.dirty = true // the next Save writes the file again
		if d.FromBackup {
			l.recovered = fmt.Sprintf("%v; the damaged file is kept as %s", d, aside)
		} else {
			l.recovered = fmt.Sprintf("%v, and its backup copy is missing or damaged too: a new ledger starts; the damaged file is kept as %s", d, aside)
		}
	}
	if raw == nil {
		return l, nil
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, err
	}
	l.records = doc.Records
	for day, pts := range doc.Days {
		l.days[day] = fromPairTotals(pts)
	}
	l.before = fromPairTotals(doc.Before)
	return l, nil
}

func fromPairTotals(pts []PairTotals) map[Pair]Totals {
	m := map[Pair]Totals{}
	for _, pt := range pts {
		t := m[pt.Pair]
		t.add(pt.Totals)
		m[pt.Pair] = t
	}
	return m
}

func toPairTotals(m map[Pair]Totals) []PairTotals {
	out := make([]PairTotals, 0, len(m))
	for p, t := range m {
		out = append(out, PairTotals{p, t})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Server != out[j].Server {
			return out[i].Server < out[j].Server
		}
		return out[i].Asker < out[j].Asker
	})
	return out
}

// Day is the UTC day of t.
func Day(t time.Time) string { return t.UTC().Format(time.DateOnly) }

// Add records a request this node's model served.
func (l *Ledger) Add(r Record) {
	if r.Time.IsZero() {
		r.Time = l.now()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.records = append(l.records, r)
	day := Day(r.Time)
	if l.days[day] == nil {
		l.days[day] = map[Pair]Totals{}
	}
	for _, s := range r.Servers {
		p := Pair{Server: s.Node, Asker: r.Asker}
		t := l.days[day][p]
		t.add(Totals{Requests: s.Fraction, TokensIn: float64(r.TokensIn) * s.Fraction, TokensOut: float64(r.TokensOut) * s.Fraction})
		l.days[day][p] = t
	}
	l.prune()
	l.dirty, l.changed = true, true
}

// prune drops records older than a week (their totals stay) and folds
// days beyond keepDays into before.
func (l *Ledger) prune() {
	cut := l.now().Add(-keepRecords)
	i := 0
	for i < len(l.records) && (l.records[i].Time.Before(cut) || len(l.records)-i > maxRecords) {
		i++
	}
	l.records = slices.Delete(l.records, 0, i)
	oldest := Day(l.now().AddDate(0, 0, -keepDays))
	for day, m := range l.days {
		if day < oldest {
			for p, t := range m {
				b := l.before[p]
				b.add(t)
				l.before[p] = b
			}
			delete(l.days, day)
		}
	}
}

// ServedToday is how many tokens this node (server) served asker today.
func (l *Ledger) ServedToday(server, asker string) float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	t := l.days[Day(l.now())][Pair{Server: server, Asker: asker}]
	return t.Tokens()
}

// Records returns the requests recorded in the last week, oldest first.
func (l *Ledger) Records() []Record {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.records)
}

// Save writes the ledger if it changed (0600, atomically).
func (l *Ledger) Save() error {
	l.mu.Lock()
	if l.path == "" || !l.dirty {
		l.mu.Unlock()
		return nil
	}
	doc := fileDoc{Records: l.records, Days: map[string][]PairTotals{}, Before: toPairTotals(l.before)}
	for day, m := range l.days {
		doc.Days[day] = toPairTotals(m)
	}
	raw, err := json.Marshal(doc)
	l.dirty = false
	l.mu.Unlock()
	if err == nil {
		err = atomicfile.WriteKeep(l.path, raw, 0o600)
	}
	if err != nil {
		err = fmt.Errorf("could not save the ledger (%s): %w", l.path, err)
		// A full disk: the next Save tries again, changed or not.
		l.mu.Lock()
		l.dirty = true
		l.mu.Unlock()
	}
	return err
}

// Recovered says what Open did about a damaged ledger file; empty when it
// found none.
func (l *Ledger) Recovered() string { return l.recovered }

// Publication returns what to tell the network, and whether it changed
// since the last call that said so.
func (l *Ledger) Publication() (Publication, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	changed := l.changed
	l.changed = false
	return l.publicationLocked(), changed
}

func (l *Ledger) publicationLocked() Publication {
	pub := Publication{Kind: "v1"}
	first := Day(l.now().AddDate(0, 0, -(publishDays - 1)))
	before := maps.Clone(l.before)
	for _, day := range slices.Sorted(maps.Keys(l.days)) {
		if day >= first {
			pub.Days = append(pub.Days, PublishedDay{Day: day, Pairs: toPairTotals(l.days[day])})
			continue
		}
		for p, t := range l.days[day] {
			b := before[p]
			b.add(t)
			before[p] = b
		}
	}
	pub.Before = toPairTotals(before)
	return pub
}

// Heard keeps another node's publication (the mesh checked its
// signature: from is its signer).
func (l *Ledger) Heard(from string, p Publication) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.others[from] = &p
}

// Parse reads a publication; ok is false for any other payload.
func Parse(payload []byte) (Publication, bool) {
	var p Publication
	if len(payload) == 0 || payload[0] != '{' || json.Unmarshal(payload, &p) != nil || p.Kind != "v1" {
		return Publication{}, false
	}
	return p, true
}

// Window is a span of days the accounts are summed over.
type Window int

// Windows.
const (
	Today Window = iota // the current UTC day
	Week                // the last 7 UTC days, today included
	All                 // everything
)

// Matrix sums every node's records (this node's own and what the others
// published) over w: who served whom.
func (l *Ledger) Matrix(self string, w Window) map[Pair]Totals {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[Pair]Totals{}
	today := Day(l.now())
	weekStart := Day(l.now().AddDate(0, 0, -6))
	inWindow := func(day string) bool {
		switch w {
		case Today:
			return day == today
		case Week:
			return day >= weekStart
		}
		return true
	}
	addAll := func(m map[Pair]Totals) {
		for p, t := range m {
			o := out[p]
			o.add(t)
			out[p] = o
		}
	}
	mine := l.publicationLocked()
	pubs := map[string]*Publication{self: &mine}
	for from, p := range l.others {
		if from != self {
			pubs[from] = p
		}
	}
	for _, p := range pubs {
		for _, d := range p.Days {
			if inWindow(d.Day) {
				addAll(fromPairTotals(d.Pairs))
			}
		}
		if w == All {
			addAll(fromPairTotals(p.Before))
		}
	}
	return out
}

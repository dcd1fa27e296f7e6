package ledger

import (
	"github.com/potluck-gpu/potluck/internal/atomicfile"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A split's tokens go to every node in proportion to its layers; what one
// node publishes, another sums to the same accounts; the file survives a
// restart; a week on, single records are gone and the totals stay.
func TestLedger(t *testing.T) {
	dir := t.TempDir()
	head, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	head.now = func() time.Time { return now }
	head.Add(Record{Asker: "alice", TokensIn: 10, TokensOut: 30, Servers: []Share{{"head", 0.75}, {"worker", 0.25}}})
	head.Add(Record{Asker: "head", TokensIn: 2, TokensOut: 2, Servers: []Share{{"head", 1}}})
	if got := head.ServedToday("head", "alice"); got != 30 {
		t.Errorf("served alice today: %v, want 30", got)
	}
	if got := head.ServedToday("worker", "alice"); got != 10 {
		t.Errorf("worker served alice today: %v, want 10", got)
	}

	// The worker hears the head's publication and sees what it gave.
	pub, changed := head.Publication()
	if !changed {
		t.Error("a new record did not change the publication")
	}
	if _, again := head.Publication(); again {
		t.Error("the publication changed without a new record")
	}
	worker, _ := Open("")
	worker.now = head.now
	raw := []byte(`{"potluck_ledger":"v1","days":[{"day":"2026-12-02","pairs":[{"server":"worker","asker":"alice","requests":0.25,"tokens_in":2.5,"tokens_out":7.5}]}]}`)
	p, ok := Parse(raw)
	if !ok {
		t.Fatal("a publication did not parse")
	}
	if _, ok := Parse([]byte("not json")); ok {
		t.Error("a removal notice parsed as a publication")
	}
	worker.Heard("head", pub)
	for _, w := range []Window{Today, Week, All} {
		if got := worker.Matrix("worker", w)[Pair{"worker", "alice"}].Tokens(); got != 10 {
			t.Errorf("window %d: the worker sees it gave alice %v tokens, want 10", w, got)
		}
		if got, want := worker.Matrix("worker", w), head.Matrix("head", w); len(got) != len(want) {
			t.Errorf("window %d: worker and head disagree: %v vs %v", w, got, want)
		}
	}
	worker.Heard("head", p) // a later publication replaces the earlier one
	if got := worker.Matrix("worker", All); len(got) != 1 {
		t.Errorf("after a newer publication: %v", got)
	}

	// Saved and read back.
	if err := head.Save(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, File)); err != nil || !atomicfile.Private(fi) {
		t.Fatalf("ledger file: %v %v", fi, err)
	}
	back, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	back.now = head.now
	if len(back.Records()) != 2 || back.ServedToday("head", "alice") != 30 {
		t.Errorf("read back: %d records, %v served", len(back.Records()), back.ServedToday("head", "alice"))
	}

	// A week later: the records are pruned, the totals stay; today is new.
	now = now.AddDate(0, 0, 8)
	back.Add(Record{Asker: "bob", TokensOut: 1, Servers: []Share{{"head", 1}}})
	if n := len(back.Records()); n != 1 {
		t.Errorf("%d records after a week; want the new one only", n)
	}
	if got := back.Matrix("head", All)[Pair{"head", "alice"}].Tokens(); got != 30 {
		t.Errorf("all time, head gave alice %v; want 30", got)
	}
	if got := back.Matrix("head", Week)[Pair{"head", "alice"}].Tokens(); got != 0 {
		t.Errorf("this week, head gave alice %v; want 0", got)
	}
	if back.ServedToday("head", "alice") != 0 {
		t.Error("yesterday's use counts today")
	}

	// A damaged ledger file is set aside, never written over, and the
	// accounts go on from its backup copy: nothing is lost.
	back.Add(Record{Asker: "alice", TokensIn: 1, TokensOut: 5, Servers: []Share{{"head", 1}}})
	if err := back.Save(); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, File), []byte("{oops"), 0o600)
	again, err := Open(dir)
	if err != nil {
		t.Fatalf("a damaged ledger with a good copy: %v", err)
	}
	if r := again.Recovered(); !strings.Contains(r, "damaged") || !strings.Contains(r, "kept as") {
		t.Errorf("Recovered() = %q", r)
	}
	if got := again.Matrix("head", All)[Pair{"head", "alice"}].Tokens(); got != 36 {
		t.Errorf("from the backup, head gave alice %v; want 36", got)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, File+".damaged-*")); len(m) != 1 {
		t.Errorf("damaged copies %v; want one", m)
	}

	// With no good copy, a new ledger starts and the damaged file stays.
	bad := t.TempDir()
	os.WriteFile(filepath.Join(bad, File), []byte("{oops"), 0o600)
	fresh, err := Open(bad)
	if err != nil {
		t.Fatal(err)
	}
	if len(fresh.Matrix("head", All)) != 0 || !strings.Contains(fresh.Recovered(), "a new ledger starts") {
		t.Errorf("fresh ledger %v, %q", fresh.Matrix("head", All), fresh.Recovered())
	}
	if m, _ := filepath.Glob(filepath.Join(bad, File+".damaged-*")); len(m) != 1 {
		t.Errorf("damaged copies %v; want one", m)
	}
}

func TestCounter(t *testing.T) {
	for _, tc := range []struct {
		name    string
		chunks  []string
		in, out int
	}{
		{"chat", []string{`{"choices":[],"usage":{"completion_tokens":9,"prompt_tokens":2}}`}, 2, 9},
		{"split across writes", []string{`{"usage":{"completion_tokens":1`, `2,"prompt_tokens":5}}`}, 5, 12},
		{"timings", []string{"data: {\"timings\":{\"prompt_n\":3,\"predicted_n\":7}}\n\n"}, 3, 7},
		{"anthropic", []string{`data: {"type":"message_start","message":{"usage":{"input_tokens":4,"output_tokens":1}}}` + "\n\n" + `data: {"type":"message_delta","usage":{"output_tokens":6}}` + "\n\n"}, 4, 6},
		{"chunks only", []string{"data: {}\n\ndata: {}\n\ndata: {}\n\ndata: {}\n\n"}, 0, 2},
	} {
		var c Counter
		for _, s := range tc.chunks {
			c.Write([]byte(s))
		}
		if c.In() != tc.in || c.Out() != tc.out {
			t.Errorf("%s: in %d out %d; want %d %d", tc.name, c.In(), c.Out(), tc.in, tc.out)
		}
	}
}

// A save that fails (a full disk) is tried again by the next Save, even
// when nothing was served meanwhile: the requests are not lost.
func TestSaveAfterAFailedOne(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	l.Add(Record{Asker: "alice", TokensOut: 7, Servers: []Share{{"head", 1}}})
	// The file's place is a directory: the write fails.
	place := filepath.Join(dir, File)
	if err := os.Mkdir(place, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := l.Save(); err == nil {
		t.Fatal("Save over a directory: nil")
	}
	if err := os.Remove(place); err != nil {
		t.Fatal(err)
	}
	if err := l.Save(); err != nil {
		t.Fatal(err)
	}
	back, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if r := back.Records(); len(r) != 1 || r[0].Asker != "alice" {
		t.Errorf("records after the second save: %+v; want alice's", r)
	}
}

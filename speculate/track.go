package speculate

import (
	"bytes"
	"fmt"
	"strconv"
	"sync"
)

// MinTokens is how many tokens a draft generates before Tracker judges
// it: a few answers' worth.
const MinTokens = 64

// Tracker measures a running draft from what llama-server reports of each
// answer (its timings: draft_n, draft_n_accepted, predicted_n and
// predicted_ms). It is safe for concurrent use.
type Tracker struct {
	// Min is how many tokens it takes before judging: MinTokens when 0.
	// A lookup waits longer, as it guesses only once the text repeats.
	Min int
	// Lookup says the guesses come from the text so far, not a draft
	// model: they cost nothing to make, and nothing at all where none is
	// made, so a lookup is switched off only when fewer of its guesses
	// hold than BreakEven (engine.BreakEven), not for a small gain.
	Lookup    bool
	BreakEven float64

	mu       sync.Mutex
	drafted  int
	accepted int
	tokens   int
	seconds  float64
}

// Record adds one answer: drafted tokens, how many of them the model
// accepted, and the tokens generated in ms milliseconds.
func (t *Tracker) Record(drafted, accepted, tokens int, ms float64) {
	if tokens <= 0 || ms <= 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.drafted += drafted
	t.accepted += accepted
	t.tokens += tokens
	t.seconds += ms / 1000
}

// Stats is what a Tracker has measured.
type Stats struct {
	Drafted  int `json:"drafted"`
	Accepted int `json:"accepted"`
	Tokens   int `json:"tokens"` // generated with the draft
	// TokensPerSecond is the decoding speed measured with the draft.
	TokensPerSecond float64 `json:"tokens_per_second"`
}

// Acceptance is the share of drafted tokens accepted; 0 when none was
// drafted.
func (s Stats) Acceptance() float64 {
	if s.Drafted == 0 {
		return 0
	}
	return float64(s.Accepted) / float64(s.Drafted)
}

// Stats returns what was measured so far.
func (t *Tracker) Stats() Stats {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := Stats{Drafted: t.drafted, Accepted: t.accepted, Tokens: t.tokens}
	if t.seconds > 0 {
		s.TokensPerSecond = float64(t.tokens) / t.seconds
	}
	return s
}

// MaxAcceptanceToJudge is the share of accepted drafts above which a
// draft is kept even when decoding is slower than predicted without it:
// its guesses hold, so the slowness is more likely the machine's load or
// the prediction's error than the draft's.
const MaxAcceptanceToJudge = 0.5

// MinGain is the least a draft must be able to gain. Each pass of the
// model yields one token of its own and the accepted guesses, and costs at
// least what a token costs without a draft, so decoding with the draft is
// at most tokens/passes times as fast as without: below MinGain, the
// draft's own time eats that up.
const MinGain = 1.1

func (t *Tracker) min() int {
	if t.Min > 0 {
		return t.Min
	}
	return MinTokens
}

// Acceptance is the share of drafted tokens accepted, once MinTokens
// were drafted: enough to tell; ok is false before.
func (t *Tracker) Acceptance() (share float64, ok bool) {
	s := t.Stats()
	if s.Drafted < MinTokens {
		return 0, false
	}
	return s.Acceptance(), true
}

// Slower says, once Min tokens were generated with the draft, whether the
// draft makes decoding slower, and why in words: when a draft model can
// gain less than MinGain whatever the speed without it, or when decoding
// with it is slower than without (tokens a second without the draft,
// predicted or measured) while the model accepts at most
// MaxAcceptanceToJudge of its tokens. A lookup is slower once MinTokens
// were drafted and fewer than BreakEven of them held.
func (t *Tracker) Slower(without float64) (string, bool) {
	s := t.Stats()
	if s.Tokens < t.min() {
		return "", false
	}
	accepted := fmt.Sprintf("the model accepted %.0f %% of %d drafted tokens", 100*s.Acceptance(), s.Drafted)
	if t.Lookup {
		if s.Drafted < MinTokens || s.Acceptance() >= t.BreakEven {
			return "", false
		}
		return fmt.Sprintf("%s, fewer than the %.0f %% that pay for checking them", accepted, 100*t.BreakEven), true
	}
	if gain := s.Gain(); gain < MinGain {
		return fmt.Sprintf("%s, so it could make decoding at most %.2f times as fast, less its own time", accepted, gain), true
	}
	if without <= 0 || s.TokensPerSecond >= without || s.Acceptance() > MaxAcceptanceToJudge {
		return "", false
	}
	return fmt.Sprintf("it made decoding slower: %.1f tokens/s with it against %.1f without; %s",
		s.TokensPerSecond, without, accepted), true
}

// Gain is the most the draft can have sped decoding up: tokens generated
// over the model's passes.
func (s Stats) Gain() float64 {
	if s.Tokens == 0 {
		return 1
	}
	return float64(s.Tokens) / float64(s.Passes())
}

// Passes is how many passes of the model generated the tokens: each
// yields its own token and the accepted guesses (at least one).
func (s Stats) Passes() int {
	return max(s.Tokens-s.Accepted, 1)
}

var (
	keyDrafted   = []byte(`"draft_n":`)
	keyAccepted  = []byte(`"draft_n_accepted":`)
	keyPredicted = []byte(`"predicted_n":`)
	keyMS        = []byte(`"predicted_ms":`)
)

// Timings reads llama-server's timings of drafts from the end of an
// answer (a JSON body or the last events of a stream): tokens drafted, of
// them accepted, and the tokens generated in ms milliseconds; ok is false
// where the answer has no timings. Timings that leave out the drafts are
// an answer with none drafted (a lookup that found nothing to repeat).
func Timings(tail []byte) (drafted, accepted, tokens int, ms float64, ok bool) {
	i := bytes.LastIndex(tail, keyDrafted)
	if i < 0 {
		i = bytes.LastIndex(tail, keyPredicted)
	}
	if i < 0 {
		return 0, 0, 0, 0, false
	}
	// The keys of the same timings block, after the last draft_n's
	// block began.
	start := bytes.LastIndexByte(tail[:i], '{')
	if start < 0 {
		start = 0
	}
	block := tail[start:]
	if end := bytes.IndexByte(block, '}'); end >= 0 {
		block = block[:end+1]
	}
	num := func(key []byte) (float64, bool) {
		j := bytes.Index(block, key)
		if j < 0 {
			return 0, false
		}
		rest := block[j+len(key):]
		end := bytes.IndexAny(rest, ",}")
		if end <= 0 {
			return 0, false
		}
		v, err := strconv.ParseFloat(string(bytes.TrimSpace(rest[:end])), 64)
		return v, err == nil && v >= 0
	}
	d, ok1 := num(keyDrafted)
	a, ok2 := num(keyAccepted)
	n, ok3 := num(keyPredicted)
	ms, ok4 := num(keyMS)
	if !bytes.Contains(block, keyDrafted) {
		d, a, ok1, ok2 = 0, 0, true, true
	}
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return 0, 0, 0, 0, false
	}
	return int(d), int(a), int(n), ms, true
}

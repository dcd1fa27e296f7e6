// Package speculate decides whether a served model decodes with a draft
// model beside it (speculative decoding), and which: the user's choice,
// or the smallest model of the library that shares its tokenizer. From
// what llama-server reports of each answer, it measures how many drafted
// tokens the model accepts and says when the draft makes decoding slower.
package speculate

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/potluck-gpu/potluck/engine"
)

// The choices besides a model's name.
const (
	Auto = "auto" // the library's smallest model of the same tokenizer, where it helps
	None = "none" // never a draft
	// NGram is draft-free speculation (engine.LookupType): guesses read
	// from the text so far. Auto uses it for a split over machines when
	// the library has no draft for the model.
	NGram = "ngram"
)

// Check says what is wrong with a choice: "auto", "none", "ngram" (or
// one of engine.LookupTypes) or a model's name or path; "" is auto.
func Check(choice string) error {
	if strings.TrimSpace(choice) != choice {
		return fmt.Errorf("draft %q: no spaces around it, please", choice)
	}
	if strings.HasPrefix(choice, "ngram-") {
		if _, ok := engine.LookupTypes[choice]; !ok {
			kinds := slices.Sorted(maps.Keys(engine.LookupTypes))
			return fmt.Errorf("draft %q: the n-gram lookups are %s", choice, strings.Join(kinds, ", "))
		}
	}
	return nil
}

// Lookup says whether choice is draft-free speculation, and of which
// type ("": engine.LookupType).
func Lookup(choice string) (kind string, ok bool) {
	if choice == NGram {
		return "", true
	}
	_, ok = engine.LookupTypes[choice]
	return choice, ok
}

// Model is a model the library has: a candidate draft, or the target.
type Model struct {
	Name  string
	Path  string
	Bytes uint64
}

// ErrNoDraft is an auto choice that found no model to draft with.
var ErrNoDraft = errors.New("no model in the library shares its tokenizer and is smaller")

// Pick chooses the draft for target: for "auto" (or ""), the smallest
// model of models smaller than target whose tokenizer is target's
// (ErrNoDraft when there is none); for a name or path, that model, when
// its tokenizer is target's; for "none", none (a zero Model). tokenizer
// reads a model's tokenizer (engine.TokenizerOf). "ngram" too picks no
// model.
func Pick(choice string, target Model, models []Model, tokenizer func(path string) (engine.Tokenizer, error)) (Model, error) {
	if _, lookup := Lookup(choice); choice == None || lookup {
		return Model{}, nil
	}
	want, err := tokenizer(target.Path)
	if err != nil {
		return Model{}, fmt.Errorf("cannot read the tokenizer of %s: %w", target.Name, err)
	}
	if choice != "" && choice != Auto {
		i := slices.IndexFunc(models, func(m Model) bool { return m.Name == choice || m.Path == choice })
		if i < 0 {
			return Model{}, fmt.Errorf("draft %s is not in the library (see `potluck models`)", choice)
		}
		m := models[i]
		if m.Path == target.Path {
			return Model{}, fmt.Errorf("draft %s is the model itself: pick a smaller model of the same tokenizer", choice)
		}
		got, err := tokenizer(m.Path)
		if err != nil {
			return Model{}, fmt.Errorf("draft %s: %w", choice, err)
		}
		if why := want.Differs(got); why != "" {
			return Model{}, fmt.Errorf("draft %s cannot draft for %s: %s", choice, target.Name, why)
		}
		return m, nil
	}
	byBytes := slices.Clone(models)
	slices.SortStableFunc(byBytes, func(a, b Model) int {
		switch {
		case a.Bytes < b.Bytes:
			return -1
		case a.Bytes > b.Bytes:
			return 1
		}
		return strings.Compare(a.Name, b.Name)
	})
	for _, m := range byBytes {
		if m.Path == target.Path || m.Bytes == 0 || m.Bytes >= target.Bytes {
			continue
		}
		got, err := tokenizer(m.Path)
		if err != nil || want.Differs(got) != "" {
			continue
		}
		return m, nil
	}
	return Model{}, ErrNoDraft
}

package server

import (
	"encoding/json"
	"errors"
	"math"
	"slices"
	"strconv"
	"strings"
)

// checker walks a request and keeps the first problem it finds; once it
// has one, its checks do nothing more, so that a validator reads as a list
// of rules.
type checker struct{ p *problem }

func (v *checker) ok() bool { return v.p == nil }

// fail keeps p unless a problem was found before; it returns false, for
// the checks to return.
func (v *checker) fail(p *problem) bool {
	if v.p == nil {
		v.p = p
	}
	return false
}

// object is a JSON object of a request and where it is.
type object struct {
	at     where
	fields map[string]json.RawMessage
}

// has says whether o has key with a value other than null.
func (o object) has(key string) bool {
	raw, ok := o.fields[key]
	return ok && jsonKindOf(raw) != kNull
}

// get is o's value of key. A required key must be there (null is there,
// and of the wrong type); an optional one that is null counts as absent.
func (v *checker) get(o object, key string, required bool) (json.RawMessage, bool) {
	if !v.ok() {
		return nil, false
	}
	raw, ok := o.fields[key]
	switch {
	case !ok && required:
		return nil, v.fail(&problem{kind: missing, at: o.at.key(key)})
	case !ok, !required && jsonKindOf(raw) == kNull:
		return nil, false
	}
	return raw, true
}

// typeProblem is raw, at at, not being w.
func typeProblem(at where, w want, raw json.RawMessage) *problem {
	return &problem{kind: wrongType, at: at, want: w, got: jsonKindOf(raw)}
}

// asObject reads raw, at at, as an object.
func (v *checker) asObject(at where, raw json.RawMessage) (object, bool) {
	if !v.ok() {
		return object{}, false
	}
	var fields map[string]json.RawMessage
	if jsonKindOf(raw) != kObject || json.Unmarshal(raw, &fields) != nil {
		return object{}, v.fail(typeProblem(at, wObject, raw))
	}
	return object{at: at, fields: fields}, true
}

// obj is o's key, which must be an object.
func (v *checker) obj(o object, key string, required bool) (object, bool) {
	raw, ok := v.get(o, key, required)
	if !ok {
		return object{}, false
	}
	return v.asObject(o.at.key(key), raw)
}

// str is o's key, which must be a string.
func (v *checker) str(o object, key string, required bool) (string, bool) {
	raw, ok := v.get(o, key, required)
	if !ok {
		return "", false
	}
	var s string
	if jsonKindOf(raw) != kString || json.Unmarshal(raw, &s) != nil {
		return "", v.fail(typeProblem(o.at.key(key), wString, raw))
	}
	return s, true
}

// enum is o's key, which must be one of the strings allowed.
func (v *checker) enum(o object, key string, required bool, allowed ...string) (string, bool) {
	s, ok := v.str(o, key, required)
	if !ok {
		return "", false
	}
	if !slices.Contains(allowed, s) {
		return "", v.fail(&problem{kind: notAllowed, at: o.at.key(key), value: s, allowed: allowed})
	}
	return s, true
}

// boolean checks that o's key, when there, is true or false.
func (v *checker) boolean(o object, key string) {
	if raw, ok := v.get(o, key, false); ok && jsonKindOf(raw) != kBool {
		v.fail(typeProblem(o.at.key(key), wBool, raw))
	}
}

// integer is o's key, which must be an integer within [least, most].
func (v *checker) integer(o object, key string, required bool, least, most int64) (int64, bool) {
	raw, ok := v.get(o, key, required)
	if !ok {
		return 0, false
	}
	at := o.at.key(key)
	if jsonKindOf(raw) != kInteger {
		return 0, v.fail(typeProblem(at, wInteger, raw))
	}
	lit := strings.TrimSpace(string(raw))
	n, err := strconv.ParseInt(lit, 10, 64)
	var numErr *strconv.NumError
	switch {
	case err != nil && (!errors.As(err, &numErr) || numErr.Err != strconv.ErrRange):
		return 0, v.fail(typeProblem(at, wInteger, raw))
	case err != nil && strings.HasPrefix(lit, "-"), err == nil && n < least:
		return 0, v.fail(&problem{kind: tooSmall, at: at, value: lit, limit: strconv.FormatInt(least, 10), integer: true})
	case err != nil, n > most:
		return 0, v.fail(&problem{kind: tooLarge, at: at, value: lit, limit: strconv.FormatInt(most, 10), integer: true})
	}
	return n, true
}

// number checks that o's key, when there, is a number within [least,
// most].
func (v *checker) number(o object, key string, least, most float64) {
	raw, ok := v.get(o, key, false)
	if !ok {
		return
	}
	at := o.at.key(key)
	k := jsonKindOf(raw)
	f, err := strconv.ParseFloat(strings.TrimSpace(string(raw)), 64)
	lit := strings.TrimSpace(string(raw))
	limit := func(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }
	switch {
	case k != kInteger && k != kDecimal:
		v.fail(typeProblem(at, wNumber, raw))
	case err != nil && !math.IsInf(f, 0):
		v.fail(typeProblem(at, wNumber, raw))
	case f < least:
		v.fail(&problem{kind: tooSmall, at: at, value: lit, limit: limit(least)})
	case f > most:
		v.fail(&problem{kind: tooLarge, at: at, value: lit, limit: limit(most)})
	}
}

// list is o's key, which must be an array (w says of what, for the
// error), with an item when nonEmpty.
func (v *checker) list(o object, key string, required bool, w want, nonEmpty bool) ([]json.RawMessage, bool) {
	raw, ok := v.get(o, key, required)
	if !ok {
		return nil, false
	}
	return v.asList(o.at.key(key), raw, w, nonEmpty)
}

// asList reads raw, at at, as an array.
func (v *checker) asList(at where, raw json.RawMessage, w want, nonEmpty bool) ([]json.RawMessage, bool) {
	var items []json.RawMessage
	if jsonKindOf(raw) != kArray || json.Unmarshal(raw, &items) != nil {
		return nil, v.fail(typeProblem(at, w, raw))
	}
	if nonEmpty && len(items) == 0 {
		return nil, v.fail(&problem{kind: emptyList, at: at})
	}
	return items, true
}

// objects calls each with every item of o's key, an array of objects.
func (v *checker) objects(o object, key string, required, nonEmpty bool, each func(object)) {
	items, _ := v.list(o, key, required, wObjects, nonEmpty)
	for i, raw := range items {
		item, ok := v.asObject(o.at.key(key).index(i), raw)
		if !ok {
			return
		}
		each(item)
		if !v.ok() {
			return
		}
	}
}

// strings checks that o's key, when there, is an array of strings.
func (v *checker) strings(o object, key string) {
	items, _ := v.list(o, key, false, wStrings, false)
	for i, raw := range items {
		if jsonKindOf(raw) != kString {
			v.fail(typeProblem(o.at.key(key).index(i), wString, raw))
			return
		}
	}
}

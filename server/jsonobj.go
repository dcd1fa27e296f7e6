package server

import (
	"bytes"
	"encoding/json"
)

// jsonObject is a JSON object whose members are kept as they came, so
// that an answer can be mended field by field without losing the fields
// Potluck does not know.
type jsonObject map[string]json.RawMessage

// parseObject reads data as a JSON object; false if it is none.
func parseObject(data []byte) (jsonObject, bool) {
	var o jsonObject
	if json.Unmarshal(data, &o) != nil || o == nil {
		return nil, false
	}
	return o, true
}

// str is the member key as a string, "" if it is none.
func (o jsonObject) str(key string) string {
	var s string
	json.Unmarshal(o[key], &s)
	return s
}

// int is the member key as an integer, and whether it is one.
func (o jsonObject) int(key string) (int, bool) {
	var n *int
	if json.Unmarshal(o[key], &n) != nil || n == nil {
		return 0, false
	}
	return *n, true
}

// object is the member key as an object, nil if it is none.
func (o jsonObject) object(key string) jsonObject {
	v, _ := parseObject(o[key])
	return v
}

// has says whether the member key is there, null or not.
func (o jsonObject) has(key string) bool {
	_, ok := o[key]
	return ok
}

// set sets the member key to v.
func (o jsonObject) set(key string, v any) {
	if b, err := marshal(v); err == nil {
		o[key] = b
	}
}

// setDefault sets the member key to v when it is missing.
func (o jsonObject) setDefault(key string, v any) {
	if !o.has(key) {
		o.set(key, v)
	}
}

// setRawDefault sets the member key to the JSON text raw when it is
// missing.
func (o jsonObject) setRawDefault(key string, raw json.RawMessage) {
	if !o.has(key) {
		o[key] = raw
	}
}

// bytes is the object as JSON, its type first as the APIs write it.
func (o jsonObject) bytes() []byte {
	typ, ok := o["type"]
	if !ok {
		b, _ := marshal(map[string]json.RawMessage(o))
		return b
	}
	delete(o, "type")
	defer func() { o["type"] = typ }()
	rest, err := marshal(map[string]json.RawMessage(o))
	if err != nil {
		return nil
	}
	b := append([]byte(`{"type":`), typ...)
	if len(rest) > 2 {
		b = append(b, ',')
	}
	return append(b, rest[1:]...)
}

// marshal is json.Marshal that leaves <, > and & as they are, as the
// backend wrote them.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

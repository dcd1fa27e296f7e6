package server

import (
	"bytes"
)

// sseEvent is one server-sent event: its name (the "event:" line, empty
// when it has none) and its data.
type sseEvent struct {
	name string
	data []byte
}

// maxEvent is the longest event an eventEditor holds back while it waits
// for the event's end; a longer one, and the rest of the stream, pass as
// they are.
const maxEvent = 8 << 20

// eventEditor rewrites a stream of server-sent events one event at a
// time, as the backend sends them. An event may arrive split across
// reads: the editor keeps its start until its end arrives, and passes on
// each complete event at once, so that the stream stays live. What it
// cannot read as one event of an "event:" line and one "data:" line
// passes unchanged: the backend's bytes are never lost.
type eventEditor struct {
	// edit returns the events that replace ev, or false to keep ev as
	// it came.
	edit func(ev sseEvent) ([]sseEvent, bool)
	buf  []byte
	off  bool // gave up on an overlong event: the rest passes as it is
}

// write takes the next bytes of the stream and returns those to send now.
func (e *eventEditor) write(p []byte) []byte {
	if e.off {
		return p
	}
	e.buf = append(e.buf, p...)
	var out []byte
	for {
		end, next := eventEnd(e.buf)
		if end < 0 {
			break
		}
		out = append(out, e.event(e.buf[:end], e.buf[:next])...)
		e.buf = e.buf[next:]
	}
	if len(e.buf) > maxEvent {
		e.off = true
		out = append(out, e.buf...)
		e.buf = nil
	}
	if len(e.buf) == 0 {
		e.buf = nil // let a long stream's early buffer go
	}
	return out
}

// end returns what is left when the stream ends: an unfinished event, as
// it came.
func (e *eventEditor) end() []byte {
	rest := e.buf
	e.buf = nil
	return rest
}

// eventEnd finds the blank line that ends the first event of b: end is
// where the event's text ends, next where the following event begins; -1
// when b holds no complete event.
func eventEnd(b []byte) (end, next int) {
	lf := bytes.Index(b, []byte("\n\n"))
	crlf := bytes.Index(b, []byte("\r\n\r\n"))
	switch {
	case crlf >= 0 && (lf < 0 || crlf < lf):
		return crlf, crlf + 4
	case lf >= 0:
		return lf, lf + 2
	}
	return -1, -1
}

// event edits one complete event: text is the event without its ending
// blank line, raw the event as it came.
func (e *eventEditor) event(text, raw []byte) []byte {
	ev, ok := parseEvent(text)
	if !ok {
		return raw
	}
	named := ev.name != ""
	evs, ok := e.edit(ev)
	if !ok {
		return raw
	}
	var out []byte
	for _, ev := range evs {
		if ev.data == nil {
			return raw
		}
		out = appendEvent(out, ev, named)
	}
	return out
}

// parseEvent reads an event made of at most one "event:" line and
// exactly one "data:" line; false for any other.
func parseEvent(text []byte) (sseEvent, bool) {
	var ev sseEvent
	var names, datas int
	for _, line := range bytes.Split(text, []byte("\n")) {
		line = bytes.TrimSuffix(line, []byte("\r"))
		field, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(field) {
		case "event":
			ev.name, names = string(value), names+1
		case "data":
			ev.data, datas = value, datas+1
		default:
			return sseEvent{}, false
		}
	}
	return ev, names <= 1 && datas == 1
}

// appendEvent writes ev to out, with an "event:" line when named.
func appendEvent(out []byte, ev sseEvent, named bool) []byte {
	if named && ev.name != "" {
		out = append(out, "event: "...)
		out = append(out, ev.name...)
		out = append(out, '\n')
	}
	out = append(out, "data: "...)
	out = append(out, ev.data...)
	return append(out, "\n\n"...)
}

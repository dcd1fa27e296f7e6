package server

import (
	"bytes"
	"strings"
	"testing"
)

// What the editor cannot read as one event passes byte for byte, however
// it arrives; the events it can read are edited, and each goes out as
// soon as its end arrives.
func TestEventEditorKeepsBytes(t *testing.T) {
	upper := func(ev sseEvent) ([]sseEvent, bool) {
		if !bytes.HasPrefix(ev.data, []byte("{")) {
			return nil, false
		}
		return []sseEvent{{name: strings.ToUpper(ev.name), data: bytes.ToUpper(ev.data)}}, true
	}
	for _, tc := range []struct{ name, in, want string }{
		{"edited", "event: a\ndata: {\"x\":1}\n\n", "event: A\ndata: {\"X\":1}\n\n"},
		{"no event line", "data: {\"x\":1}\n\n", "data: {\"X\":1}\n\n"},
		{"CRLF", "event: a\r\ndata: {}\r\n\r\n", "event: A\ndata: {}\n\n"},
		{"not JSON", "data: [DONE]\n\n", "data: [DONE]\n\n"},
		{"two data lines", "data: {\n data: }\n\n", "data: {\n data: }\n\n"},
		{"a comment", ": ping\n\n", ": ping\n\n"},
		{"an id", "id: 4\ndata: {}\n\n", "id: 4\ndata: {}\n\n"},
		{"unfinished", "event: a\ndata: {\"x\":1}\n", "event: a\ndata: {\"x\":1}\n"},
		{"not events", "<html>oops</html>", "<html>oops</html>"},
		{"mixed", "data: {}\n\n: hi\n\nevent: b\ndata: {\"y\"", "data: {}\n\n: hi\n\nevent: b\ndata: {\"y\""},
	} {
		for cut := 0; cut <= len(tc.in); cut++ {
			ed := &eventEditor{edit: upper}
			got := string(ed.write([]byte(tc.in[:cut]))) + string(ed.write([]byte(tc.in[cut:]))) + string(ed.end())
			if got != tc.want {
				t.Errorf("%s, split at %d: %q, want %q", tc.name, cut, got, tc.want)
				break
			}
		}
	}

	// Each complete event goes out at once; its unfinished follower waits.
	ed := &eventEditor{edit: upper}
	if got := string(ed.write([]byte("data: {\"a\":1}\n\ndata: {\"b\""))); got != "data: {\"A\":1}\n\n" {
		t.Errorf("first write sent %q", got)
	}
	if got := string(ed.write([]byte(":2}\n\n"))); got != "data: {\"B\":2}\n\n" {
		t.Errorf("second write sent %q", got)
	}

	// An event too long to hold back goes as it is, and so does the rest.
	ed = &eventEditor{edit: upper}
	long := "data: {" + strings.Repeat("x", maxEvent)
	got := string(ed.write([]byte(long))) + string(ed.write([]byte("}\n\ndata: {}\n\n"))) + string(ed.end())
	if got != long+"}\n\ndata: {}\n\n" {
		t.Errorf("an overlong event: %d bytes out of %d", len(got), len(long)+14)
	}
}

// llama-server's Anthropic streams, mended: the model the client asked
// for, a message id and usage as Anthropic's, and tool calls with their
// input from the start; the same however the bytes are split.
func TestAnthropicStreams(t *testing.T) {
	for _, name := range []string{"anthropic_text_limit", "anthropic_tool"} {
		in := recording(t, name+".sse")
		mend := func(sizes ...int) []byte {
			s := &anthropicStream{model: "claude-local"}
			ed := &eventEditor{edit: s.edit}
			var out []byte
			rest := in
			for _, n := range sizes {
				out = append(out, ed.write(rest[:n])...)
				rest = rest[n:]
			}
			return append(append(out, ed.write(rest)...), ed.end()...)
		}
		out := mend()
		evs := splitEvents(t, out)
		names := []string{}
		for _, ev := range evs {
			names = append(names, ev.name)
			o, _ := parseObject(ev.data)
			if o.str("type") != ev.name {
				t.Errorf("%s: event %s of type %s", name, ev.name, o.str("type"))
			}
			switch ev.name {
			case "message_start":
				msg := o.object("message")
				u := msg.object("usage")
				if msg.str("model") != "claude-local" || !strings.HasPrefix(msg.str("id"), "msg_") || !u.has("cache_creation_input_tokens") || !u.has("input_tokens") {
					t.Errorf("%s: message_start %s", name, ev.data)
				}
			case "content_block_start":
				if b := o.object("content_block"); !o.has("index") || (b.str("type") == "tool_use" && string(b["input"]) != "{}") {
					t.Errorf("%s: %s", name, ev.data)
				}
			case "message_delta":
				if _, ok := o.object("usage").int("output_tokens"); !ok || o.object("delta").str("stop_reason") == "" {
					t.Errorf("%s: %s", name, ev.data)
				}
			}
		}
		if names[0] != "message_start" || names[len(names)-1] != "message_stop" {
			t.Errorf("%s: events %v", name, names)
		}
		for cut := 1; cut < len(in); cut += 5 {
			if got := mend(cut); !bytes.Equal(got, out) {
				t.Fatalf("%s split at %d:\n%s", name, cut, got)
			}
		}

		whole, ok := (&anthropicStream{model: "claude-local"}).whole(recording(t, name+".json"))
		msg, _ := parseObject(whole)
		if !ok || msg.str("model") != "claude-local" || !strings.HasPrefix(msg.str("id"), "msg_") || msg.str("stop_reason") == "" {
			t.Errorf("%s whole: %s", name, whole)
		}
	}
	if _, ok := (&anthropicStream{model: "m"}).whole([]byte(`{"input_tokens":4}`)); ok {
		t.Error("count_tokens' answer was changed")
	}
}

// A stream llama-server began without message_start gets one, even when
// its first event arrives in pieces; a stream that has it keeps its own.
func TestAnthropicMessageStart(t *testing.T) {
	missing := "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n"
	for cut := 0; cut < len(missing); cut++ {
		ed := &eventEditor{edit: (&anthropicStream{model: "tiny"}).edit}
		out := string(ed.write([]byte(missing[:cut]))) + string(ed.write([]byte(missing[cut:])))
		if !strings.HasPrefix(out, "event: message_start\ndata: {\"type\":\"message_start\"") || strings.Count(out, "message_start\n") != 1 ||
			!strings.Contains(out, `"model":"tiny"`) || !strings.Contains(out, `"role":"assistant"`) || !strings.HasSuffix(out, "event: content_block_start\n"+
			"data: {\"type\":\"content_block_start\",\"content_block\":{\"citations\":null,\"text\":\"\",\"type\":\"text\"},\"index\":0}\n\n") {
			t.Fatalf("split at %d: %s", cut, out)
		}
	}
	ed := &eventEditor{edit: (&anthropicStream{model: "tiny"}).edit}
	out := string(ed.write(recording(t, "anthropic_text_limit.sse")))
	if strings.Count(out, "event: message_start") != 1 {
		t.Errorf("message_start doubled:\n%s", out)
	}
}

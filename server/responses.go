package server

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/potluck-gpu/potluck/ledger"
)

// OpenAI's Responses API (/v1/responses), as OpenAI documents it.
// llama-server's answers lack parts of it: its events have no
// sequence_number and no output_index or content_index, its lifecycle
// events no model, settings or usage, its tool calls no item id, an
// answer cut at max_output_tokens says "completed", and a stream whose
// first token it held back has no response.created. Clients that rebuild
// the response from the events (the official SDKs) fail on that; the
// responder here mends it, streamed and whole.

// responsesRequest is what a request to /v1/responses says that its
// answer repeats: the model as the client named it, its token limit, and
// its settings.
type responsesRequest struct {
	model     string
	maxOutput int // 0: none asked
	body      jsonObject
}

// parseResponsesRequest reads what the answer repeats from a request body.
func parseResponsesRequest(body []byte) responsesRequest {
	o, _ := parseObject(body)
	r := responsesRequest{model: o.str("model"), body: o}
	if n, ok := o.int("max_output_tokens"); ok && n > 0 {
		r.maxOutput = n
	}
	return r
}

// responseDefaults are the members OpenAI's response object always has
// that repeat the request, with their value when the request does not
// say (nil: left out then).
var responseDefaults = []struct {
	key   string
	value json.RawMessage
}{
	{"access_programs", json.RawMessage(`null`)},
	{"background", json.RawMessage(`false`)},
	{"instructions", json.RawMessage(`null`)},
	{"max_output_tokens", json.RawMessage(`null`)},
	{"max_tool_calls", json.RawMessage(`null`)},
	{"metadata", json.RawMessage(`{}`)},
	{"parallel_tool_calls", json.RawMessage(`true`)},
	{"previous_response_id", json.RawMessage(`null`)},
	{"reasoning", json.RawMessage(`{"effort":null,"summary":null}`)},
	{"temperature", json.RawMessage(`null`)},
	{"text", json.RawMessage(`{"format":{"type":"text"}}`)},
	{"tool_choice", json.RawMessage(`"auto"`)},
	{"tools", json.RawMessage(`[]`)},
	{"top_p", json.RawMessage(`null`)},
	{"truncation", json.RawMessage(`"disabled"`)},
	{"user", nil}, // a string when the request names one; never null
}

// responsesResponder writes an answer of /v1/responses in the shape
// OpenAI documents.
type responsesResponder struct {
	req responsesRequest
	now func() time.Time // nil: time.Now
}

// newResponsesResponder answers the request whose body is body.
func newResponsesResponder(body []byte) responsesResponder {
	return responsesResponder{req: parseResponsesRequest(body)}
}

func (r responsesResponder) respond(c *gin.Context, resp *http.Response, first []byte) delivery {
	return editedAnswer(c, resp, first, func() answerEditor { return r.stream() })
}

// stream is the state of one answer.
func (r responsesResponder) stream() *responsesStream {
	now := time.Now
	if r.now != nil {
		now = r.now
	}
	return &responsesStream{req: r.req, now: now}
}

// responsesStream mends one answer, event by event.
type responsesStream struct {
	req        responsesRequest
	now        func() time.Time
	seq        int
	id         string
	created    int64
	begun      bool          // response.created went out
	progressed bool          // and response.in_progress
	items      []*outputItem // in the order they were added
}

// outputItem is an item of the response's output, as its events named it.
type outputItem struct {
	id, typ string
	index   int // output_index
	parts   int // content parts added
	done    bool
	// What its deltas said, and whether the event that ends them came:
	// llama-server sends no function_call_arguments.done and no
	// reasoning_text.done.
	text     strings.Builder
	textDone bool
}

// close returns the events OpenAI sends before an item's
// output_item.done that the backend did not send: the one with a
// function call's arguments, or those that end a reasoning item's text.
// item is the finished item, mended.
func (it *outputItem) close(item jsonObject) []jsonObject {
	if it.textDone {
		return nil
	}
	it.textDone = true
	event := func(typ string) jsonObject {
		e := jsonObject{}
		e.set("type", typ)
		e.set("item_id", it.id)
		e.set("output_index", it.index)
		return e
	}
	switch {
	case it.typ == "function_call":
		e := event("response.function_call_arguments.done")
		args := it.text.String()
		if item.has("arguments") {
			args = item.str("arguments")
		}
		e.set("arguments", args)
		e.set("name", item.str("name"))
		return []jsonObject{e}
	case it.typ == "reasoning" && it.parts > 0:
		text := it.text.String()
		part := map[string]string{"type": "reasoning_text", "text": text}
		if string(item["content"]) == "[]" {
			item.set("content", []any{part})
		}
		done := event("response.reasoning_text.done")
		done.set("content_index", it.parts-1)
		done.set("text", text)
		partDone := event("response.content_part.done")
		partDone.set("content_index", it.parts-1)
		partDone.set("part", part)
		return []jsonObject{done, partDone}
	}
	return nil
}

// lifecycle events carry the whole response; terminal ones end it.
var (
	lifecycleEvents = map[string]bool{"response.created": true, "response.queued": true, "response.in_progress": true,
		"response.completed": true, "response.incomplete": true, "response.failed": true}
	terminalEvents = map[string]bool{"response.completed": true, "response.incomplete": true, "response.failed": true}
)

// contentEvent says whether events of type typ address a content part
// (content_index) of their item.
func contentEvent(typ string) bool {
	for _, p := range []string{"response.content_part.", "response.output_text.", "response.refusal.", "response.reasoning_text."} {
		if strings.HasPrefix(typ, p) {
			return true
		}
	}
	return false
}

// edit mends one event; it may add one before it (the content part a
// reasoning item's text goes into).
func (s *responsesStream) edit(ev sseEvent) ([]sseEvent, bool) {
	o, ok := parseObject(ev.data)
	if !ok {
		return nil, false
	}
	typ := o.str("type")
	if typ == "" {
		if typ = ev.name; typ == "" {
			return nil, false
		}
		o.set("type", typ)
	}
	var out []jsonObject
	switch {
	case typ == "response.created" && s.begun, typ == "response.in_progress" && s.progressed:
		// llama-server repeats both with each token while its first
		// is held back; OpenAI's come once.
		return nil, true
	case !s.begun && typ != "response.created":
		// llama-server sends no response.created when its first token
		// was held back (half a character, or what could begin a stop
		// word): OpenAI's clients need one first.
		id := ""
		if resp := o.object("response"); resp != nil {
			id = resp.str("id")
		}
		starts := []string{"response.created", "response.in_progress"}
		if typ == "response.in_progress" {
			starts = starts[:1]
		}
		for _, t := range starts {
			resp := jsonObject{}
			if id != "" {
				resp.set("id", id)
			}
			s.fill(resp, false)
			e := jsonObject{}
			e.set("type", t)
			e.set("response", resp)
			out = append(out, e)
		}
		s.begun, s.progressed = true, true
	}
	switch typ {
	case "response.created":
		s.begun = true
	case "response.in_progress":
		s.progressed = true
	}
	switch {
	case lifecycleEvents[typ]:
		resp := o.object("response")
		if resp == nil {
			resp = jsonObject{}
		}
		switch typ {
		case "response.failed", "response.incomplete":
			resp.setDefault("status", strings.TrimPrefix(typ, "response."))
		}
		s.fill(resp, terminalEvents[typ])
		if typ == "response.completed" && resp.str("status") == "incomplete" {
			typ = "response.incomplete" // as OpenAI ends a response cut short
			o.set("type", typ)
		}
		o.set("response", resp)
	case typ == "response.output_item.added" || typ == "response.output_item.done":
		if item := o.object("item"); item != nil {
			done := typ == "response.output_item.done"
			it := s.item(item, done)
			s.mendItem(item, done, it)
			if !o.has("output_index") {
				o.set("output_index", it.index)
			}
			if done {
				out = append(out, it.close(item)...)
			}
			o.set("item", item)
		}
	case strings.HasPrefix(typ, "response."):
		out = append(out, s.address(o, typ)...)
	}
	out = append(out, o)
	evs := make([]sseEvent, len(out))
	for i, e := range out {
		e.set("sequence_number", s.seq)
		s.seq++
		evs[i] = sseEvent{name: e.str("type"), data: e.bytes()}
	}
	return evs, true
}

// item finds, or for a new one adds, the output item an
// output_item.added or .done event carries.
func (s *responsesStream) item(item jsonObject, done bool) *outputItem {
	id := itemID(item)
	var it *outputItem
	for _, x := range s.items {
		if id != "" && x.id == id {
			it = x
		}
	}
	if it == nil {
		typ := item.str("type")
		if id == "" {
			id = newID(itemPrefix(typ))
		}
		it = &outputItem{id: id, typ: typ, index: len(s.items)}
		if n, ok := item.int("output_index"); ok {
			it.index = n
		}
		s.items = append(s.items, it)
	}
	it.done = it.done || done
	return it
}

// itemID is an item's id; a function call llama-server sent without one
// is known by its call_id, which its argument events name as item_id.
func itemID(item jsonObject) string {
	if id := item.str("id"); id != "" {
		return id
	}
	if item.str("type") == "function_call" {
		return item.str("call_id")
	}
	return ""
}

// itemPrefix is how OpenAI's ids of items of type typ begin.
func itemPrefix(typ string) string {
	switch typ {
	case "message":
		return "msg_"
	case "function_call":
		return "fc_"
	case "reasoning":
		return "rs_"
	}
	return "item_"
}

// address gives an event about part of an item the item_id, output_index
// and content_index OpenAI's has. An event that names no item is about
// the one being written. It returns the events to send first that
// llama-server did not: the content_part.added of a reasoning item's
// text that begins with no part to go into, and the output_item.added
// and content_part.added of a message whose text it held back to the end
// (half a character, or what could begin a stop word).
func (s *responsesStream) address(o jsonObject, typ string) []jsonObject {
	var before []jsonObject
	it := s.current(o.str("item_id"))
	if it == nil && o.str("item_id") != "" && (strings.HasPrefix(typ, "response.output_text.") || strings.HasPrefix(typ, "response.content_part.")) {
		item := jsonObject{}
		item.set("id", o.str("item_id"))
		item.set("type", "message")
		item.set("role", "assistant")
		item.set("status", "in_progress")
		item.set("content", []any{})
		it = s.item(item, false)
		added := jsonObject{}
		added.set("type", "response.output_item.added")
		added.set("output_index", it.index)
		added.set("item", item)
		before = append(before, added)
	}
	if it == nil {
		return nil
	}
	o.setDefault("item_id", it.id)
	o.setDefault("output_index", it.index)
	switch typ {
	case "response.function_call_arguments.delta", "response.reasoning_text.delta":
		it.text.WriteString(o.str("delta"))
	case "response.function_call_arguments.done", "response.reasoning_text.done":
		it.textDone = true
	}
	if !contentEvent(typ) {
		return before
	}
	textType := map[string]string{"response.reasoning_text.delta": "reasoning_text",
		"response.output_text.delta": "output_text", "response.output_text.done": "output_text"}[typ]
	if textType != "" && it.parts == 0 {
		part := jsonObject{}
		part.set("type", "response.content_part.added")
		part.set("item_id", it.id)
		part.set("output_index", it.index)
		part.set("content_index", 0)
		p := jsonObject{}
		p.set("type", textType)
		p.set("text", "")
		mendPart(p)
		part.set("part", p)
		it.parts = 1
		before = append(before, part)
	}
	if typ == "response.content_part.added" {
		o.setDefault("content_index", it.parts)
	} else {
		o.setDefault("content_index", max(it.parts-1, 0))
	}
	if n, ok := o.int("content_index"); ok && typ == "response.content_part.added" {
		it.parts = max(it.parts, n+1)
	}
	if typ == "response.output_text.delta" || typ == "response.output_text.done" {
		o.setRawDefault("logprobs", json.RawMessage(`[]`))
	}
	if p := o.object("part"); p != nil {
		mendPart(p)
		o.set("part", p)
	}
	return before
}

// current is the item named id or, when id is empty, the last one not
// yet done (else the last one).
func (s *responsesStream) current(id string) *outputItem {
	if len(s.items) == 0 {
		return nil
	}
	if id != "" {
		for _, it := range s.items {
			if it.id == id {
				return it
			}
		}
		return nil
	}
	for i := len(s.items) - 1; i >= 0; i-- {
		if !s.items[i].done {
			return s.items[i]
		}
	}
	return s.items[len(s.items)-1]
}

// newID is a fresh id that begins with prefix.
func newID(prefix string) string {
	b := make([]byte, 12)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// whole mends an answer that is not streamed: one response object.
func (s *responsesStream) whole(body []byte) ([]byte, bool) {
	o, ok := parseObject(body)
	if !ok || o.str("object") != "response" {
		return nil, false
	}
	s.fill(o, true)
	b := o.bytes()
	return b, b != nil
}

// editedWhole writes an answer that is not streamed, mended by edit; an
// editedAnswer writes a backend's answer mended by an answerEditor made
// for it: a JSON answer whole, server-sent events one by one. Errors, and
// answers of any other type, pass as they are.
func editedAnswer(c *gin.Context, resp *http.Response, first []byte, newEditor func() answerEditor) delivery {
	ct := resp.Header.Get("Content-Type")
	switch {
	case resp.StatusCode >= 400:
	case strings.HasPrefix(ct, "text/event-stream"):
		return editedStream(c, resp, first, &eventEditor{edit: newEditor().edit})
	case strings.HasPrefix(ct, "application/json"):
		return editedWhole(c, resp, first, newEditor().whole)
	}
	return passthrough{}.respond(c, resp, first)
}

// answerEditor mends one answer: whole, or event by event.
type answerEditor interface {
	whole(body []byte) ([]byte, bool)
	edit(ev sseEvent) ([]sseEvent, bool)
}

// answer edit cannot read goes as it came.
func editedWhole(c *gin.Context, resp *http.Response, first []byte, edit func([]byte) ([]byte, bool)) delivery {
	rest, err := io.ReadAll(resp.Body)
	body := append(bytes.Clone(first), rest...)
	tokens := &ledger.Counter{}
	tokens.Write(body)
	d := delivery{tokens: tokens.Out()}
	if err != nil {
		d.broken, d.err = true, err
	} else if mended, ok := edit(body); ok {
		body = mended
	}
	copyHeaders(c, resp)
	c.Status(resp.StatusCode)
	if _, werr := c.Writer.Write(body); werr != nil {
		d.broken = true
	}
	return d
}

// editedStream writes a stream of server-sent events, mended by ed.
func editedStream(c *gin.Context, resp *http.Response, first []byte, ed *eventEditor) delivery {
	copyHeaders(c, resp)
	c.Status(resp.StatusCode)
	c.Writer.WriteHeaderNow()
	return copyStream(c, resp, first, ed)
}

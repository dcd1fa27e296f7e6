package server

import (
	"encoding/json"
)

// The response object and its output items, completed to OpenAI's shape.

// fill completes a response object: the one lifecycle events carry
// (final for the one that ends the stream) or the whole answer.
func (s *responsesStream) fill(resp jsonObject, final bool) {
	if s.id == "" {
		if s.id = resp.str("id"); s.id == "" {
			s.id = newID("resp_")
		}
	}
	resp.set("id", s.id) // one id in every event, whichever came first
	resp.setDefault("object", "response")
	if s.created == 0 {
		if n, ok := resp.int("created_at"); ok && n > 0 {
			s.created = int64(n)
		} else {
			s.created = s.now().Unix()
		}
	}
	resp.set("created_at", s.created) // the same in every event
	if s.req.model != "" {
		resp.set("model", s.req.model) // as the client named it, not llama-server's alias
	}
	status := "in_progress"
	if final {
		status = "completed"
	}
	resp.setDefault("status", status)
	resp.setRawDefault("error", json.RawMessage(`null`))
	resp.setRawDefault("incomplete_details", json.RawMessage(`null`))
	for _, d := range responseDefaults {
		if v, ok := s.req.body[d.key]; ok {
			resp.setRawDefault(d.key, v)
		} else if d.value != nil {
			resp.setRawDefault(d.key, d.value)
		}
	}
	if tools, ok := mendEach(resp["tools"], mendTool); ok {
		resp["tools"] = tools
	}
	i := 0
	output, ok := mendEach(resp["output"], func(item jsonObject) {
		var it *outputItem
		if i < len(s.items) && s.items[i].typ == item.str("type") {
			it = s.items[i] // as its events named it
		}
		s.mendItem(item, final, it)
		i++
	})
	if ok {
		resp["output"] = output
	}
	resp.setRawDefault("output", json.RawMessage(`[]`))
	if !final {
		return
	}
	usage := resp.object("usage")
	if usage != nil {
		details := usage.object("input_tokens_details")
		if details == nil {
			details = jsonObject{}
		}
		details.setDefault("cached_tokens", 0)
		details.setDefault("cache_write_tokens", 0)
		usage.set("input_tokens_details", details)
		usage.setRawDefault("output_tokens_details", json.RawMessage(`{"reasoning_tokens":0}`))
		in, _ := usage.int("input_tokens")
		out, _ := usage.int("output_tokens")
		usage.setDefault("total_tokens", in+out)
		resp.set("usage", usage)
	}
	// llama-server says "completed" when the token limit cut the answer
	// short too: the usage tells.
	if out, ok := usage.int("output_tokens"); ok && resp.str("status") == "completed" && s.req.maxOutput > 0 && out >= s.req.maxOutput {
		resp.set("status", "incomplete")
		resp.set("incomplete_details", map[string]string{"reason": "max_output_tokens"})
	}
}

// mendItem completes an output item: the id its events used (it, when
// known), and the members OpenAI's items of its type have. done says the
// item is finished.
func (s *responsesStream) mendItem(item jsonObject, done bool, it *outputItem) {
	typ := item.str("type")
	if id := itemID(item); id != "" {
		item.setDefault("id", id)
	} else if it != nil {
		item.set("id", it.id)
	} else {
		item.set("id", newID(itemPrefix(typ)))
	}
	status := "in_progress"
	if done {
		status = "completed"
	}
	item.setDefault("status", status)
	switch typ {
	case "message":
		item.setDefault("role", "assistant")
		if parts, ok := mendEach(item["content"], mendPart); ok {
			item["content"] = parts
		}
		item.setRawDefault("content", json.RawMessage(`[]`))
	case "function_call":
		item.setDefault("call_id", item.str("id"))
		item.setDefault("arguments", "")
	case "reasoning":
		item.setRawDefault("summary", json.RawMessage(`[]`))
	}
}

// mendTool completes a tool as the response repeats it: a function tool
// says whether its schema is strict (the Responses API's default) and has
// parameters.
func mendTool(t jsonObject) {
	if t.str("type") == "function" {
		t.setDefault("strict", true)
		t.setRawDefault("parameters", json.RawMessage(`null`))
	}
}

// mendPart completes a content part: output text has annotations.
func mendPart(p jsonObject) {
	if p.str("type") == "output_text" {
		p.setRawDefault("annotations", json.RawMessage(`[]`))
	}
}

// mendEach applies mend to each object of the JSON array raw, and returns
// the array; false if raw is no array. Members that are not objects stay
// as they are.
func mendEach(raw json.RawMessage, mend func(jsonObject)) (json.RawMessage, bool) {
	var list []json.RawMessage
	if json.Unmarshal(raw, &list) != nil || list == nil {
		return nil, false
	}
	for i, m := range list {
		if o, ok := parseObject(m); ok {
			mend(o)
			list[i] = o.bytes()
		}
	}
	out, err := marshal(list)
	return out, err == nil
}

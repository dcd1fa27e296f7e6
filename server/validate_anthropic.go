package server

// The rules of Anthropic's Messages API, as Anthropic checks them: POST
// /v1/messages, and /v1/messages/count_tokens, which takes the same
// request without what only generating needs.

// checkMessages checks a Messages request; count when it is one to count
// the tokens of.
func checkMessages(v *checker, o object, count bool) {
	v.str(o, "model", false) // none: the model served, when there is one
	if !count {
		v.integer(o, "max_tokens", true, 1, maxCount)
	}
	v.objects(o, "messages", true, true, func(m object) {
		v.enum(m, "role", true, "user", "assistant")
		checkBlocks(v, m, "content", true)
	})
	if raw, ok := v.get(o, "system", false); ok && jsonKindOf(raw) != kString {
		v.objects(o, "system", false, false, func(b object) {
			v.enum(b, "type", true, "text")
			v.str(b, "text", true)
		})
	}
	v.objects(o, "tools", false, false, func(t object) {
		v.str(t, "name", true)
		// Anthropic's own tools (a bash, an editor, a web search) have a
		// versioned type and no schema.
		if typ, _ := v.str(t, "type", false); typ == "" || typ == "custom" {
			v.obj(t, "input_schema", true)
		}
	})
	if tc, ok := v.obj(o, "tool_choice", false); ok {
		if typ, _ := v.enum(tc, "type", true, "auto", "any", "tool", "none"); typ == "tool" {
			v.str(tc, "name", true)
		}
	}
	if th, ok := v.obj(o, "thinking", false); ok {
		if typ, _ := v.str(th, "type", true); typ == "enabled" {
			v.integer(th, "budget_tokens", true, 1, maxCount)
		}
	}
	if count {
		return
	}
	v.boolean(o, "stream")
	v.number(o, "temperature", 0, 1)
	v.number(o, "top_p", 0, 1)
	v.integer(o, "top_k", false, 0, maxCount)
	v.strings(o, "stop_sequences")
	v.obj(o, "metadata", false)
}

// checkBlocks checks that o's key is a string or an array of content
// blocks, each an object of a type with the fields that type needs.
// Blocks of types not checked here (documents, thinking, server tools)
// pass.
func checkBlocks(v *checker, o object, key string, required bool) {
	raw, ok := v.get(o, key, required)
	if !ok || jsonKindOf(raw) == kString {
		return
	}
	if jsonKindOf(raw) != kArray {
		v.fail(typeProblem(o.at.key(key), wContent, raw))
		return
	}
	v.objects(o, key, true, false, func(b object) {
		switch typ, _ := v.str(b, "type", true); typ {
		case "text":
			v.str(b, "text", true)
		case "image":
			v.obj(b, "source", true)
		case "tool_use":
			v.str(b, "id", true)
			v.str(b, "name", true)
			v.obj(b, "input", true)
		case "tool_result":
			v.str(b, "tool_use_id", true)
			checkBlocks(v, b, "content", false)
			v.boolean(b, "is_error")
		}
	})
}

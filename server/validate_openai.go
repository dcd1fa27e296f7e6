package server

import "math"

// The rules of OpenAI's API: chat completions, completions, the Responses
// API and embeddings, as OpenAI checks them, kept where llama-server is
// more lenient only when a client could not mean otherwise.

// checkSampling checks the fields the generating endpoints share.
func checkSampling(v *checker, o object) {
	v.str(o, "model", false) // none: the model served, when there is one
	v.boolean(o, "stream")
	v.obj(o, "stream_options", false)
	v.number(o, "temperature", 0, 2)
	v.number(o, "top_p", 0, 1)
	v.number(o, "presence_penalty", -2, 2)
	v.number(o, "frequency_penalty", -2, 2)
	v.integer(o, "seed", false, math.MinInt64, math.MaxInt64)
}

// checkChat checks a chat completion: POST /v1/chat/completions.
func checkChat(v *checker, o object) {
	checkSampling(v, o)
	v.objects(o, "messages", true, true, func(m object) { checkChatMessage(v, m) })
	v.integer(o, "max_tokens", false, 1, maxCount)
	v.integer(o, "max_completion_tokens", false, 1, maxCount)
	v.integer(o, "n", false, 1, 128)
	v.objects(o, "tools", false, false, func(t object) {
		switch typ, _ := v.enum(t, "type", true, "function", "custom"); typ {
		case "function":
			if f, ok := v.obj(t, "function", true); ok {
				v.str(f, "name", true)
				v.obj(f, "parameters", false)
			}
		case "custom":
			if c, ok := v.obj(t, "custom", true); ok {
				v.str(c, "name", true)
			}
		}
	})
	checkToolChoice(v, o, true)
	if rf, ok := v.obj(o, "response_format", false); ok {
		if typ, _ := v.enum(rf, "type", true, "text", "json_object", "json_schema"); typ == "json_schema" {
			if js, ok := v.obj(rf, "json_schema", true); ok {
				v.str(js, "name", true)
				v.obj(js, "schema", false)
			}
		}
	}
}

// checkChatMessage checks one message of a chat.
func checkChatMessage(v *checker, m object) {
	role, ok := v.enum(m, "role", true, "system", "developer", "user", "assistant", "tool", "function")
	if !ok {
		return
	}
	v.str(m, "name", role == "function")
	switch role {
	case "assistant": // its content may be absent or null: it called tools
		if _, ok := v.get(m, "content", false); ok {
			checkParts(v, m, "content")
		}
		v.objects(m, "tool_calls", false, false, func(tc object) {
			v.str(tc, "id", false)
			v.enum(tc, "type", false, "function", "custom")
			if f, ok := v.obj(tc, "function", false); ok {
				v.str(f, "name", true)
				v.str(f, "arguments", false)
			}
		})
	case "function":
		v.str(m, "content", false)
	default:
		if _, ok := v.get(m, "content", true); ok {
			checkParts(v, m, "content")
		}
		if role == "tool" {
			v.str(m, "tool_call_id", true)
		}
	}
}

// checkParts checks that o's key is a string or an array of content
// parts, each an object of a type; text and image parts carry theirs.
func checkParts(v *checker, o object, key string) {
	raw, ok := v.get(o, key, true)
	if !ok || jsonKindOf(raw) == kString {
		return
	}
	if jsonKindOf(raw) != kArray {
		v.fail(typeProblem(o.at.key(key), wContent, raw))
		return
	}
	v.objects(o, key, true, false, func(part object) {
		switch typ, _ := v.str(part, "type", true); typ {
		case "text", "input_text", "output_text":
			v.str(part, "text", true)
		case "image_url":
			if img, ok := v.obj(part, "image_url", true); ok {
				v.str(img, "url", true)
			}
		}
	})
}

// checkToolChoice checks tool_choice: "none", "auto", "required" or an
// object naming a function (nested in chat, flat in the Responses API).
func checkToolChoice(v *checker, o object, nested bool) {
	raw, ok := v.get(o, "tool_choice", false)
	if !ok {
		return
	}
	switch jsonKindOf(raw) {
	case kString:
		v.enum(o, "tool_choice", false, "none", "auto", "required")
	case kObject:
		tc, _ := v.obj(o, "tool_choice", false)
		typ, _ := v.str(tc, "type", true)
		switch {
		case typ == "function" && nested:
			if f, ok := v.obj(tc, "function", true); ok {
				v.str(f, "name", true)
			}
		case typ == "function":
			v.str(tc, "name", true)
		}
	default:
		v.fail(typeProblem(o.at.key("tool_choice"), wChoice, raw))
	}
}

// checkCompletion checks a text completion: POST /v1/completions.
func checkCompletion(v *checker, o object) {
	checkSampling(v, o)
	if raw, ok := v.get(o, "prompt", true); ok && jsonKindOf(raw) != kString && jsonKindOf(raw) != kArray {
		v.fail(typeProblem(where{"prompt"}, wPrompt, raw))
	}
	v.integer(o, "max_tokens", false, 0, maxCount) // 0 with echo scores the prompt
	v.integer(o, "n", false, 1, 128)
	v.boolean(o, "echo")
	v.str(o, "suffix", false)
}

// checkResponse checks a request of the Responses API: POST
// /v1/responses. OpenAI asks for 16 output tokens at least; any positive
// count is served here, as small models are asked for fewer.
func checkResponse(v *checker, o object) {
	checkSampling(v, o)
	v.str(o, "instructions", false)
	v.integer(o, "max_output_tokens", false, 1, maxCount)
	// The input may come from elsewhere: an earlier response, a
	// conversation, a stored prompt.
	required := !o.has("previous_response_id") && !o.has("conversation") && !o.has("prompt")
	if raw, ok := v.get(o, "input", required); ok {
		switch jsonKindOf(raw) {
		case kString:
		case kArray:
			v.objects(o, "input", true, false, func(item object) { checkInputItem(v, item) })
		default:
			v.fail(typeProblem(where{"input"}, wItems, raw))
		}
	}
	v.objects(o, "tools", false, false, func(t object) {
		if typ, _ := v.str(t, "type", true); typ == "function" {
			v.str(t, "name", true)
			v.obj(t, "parameters", false)
		}
	})
	checkToolChoice(v, o, false)
	if text, ok := v.obj(o, "text", false); ok {
		if f, ok := v.obj(text, "format", false); ok {
			if typ, _ := v.enum(f, "type", true, "text", "json_object", "json_schema"); typ == "json_schema" {
				v.str(f, "name", true)
				v.obj(f, "schema", true)
			}
		}
	}
}

// checkInputItem checks one item of a Responses input: a message (with
// or without its type), a function call or a function call's output.
// Items of other types (reasoning, the built-in tools' calls) pass.
func checkInputItem(v *checker, item object) {
	typ, _ := v.str(item, "type", false)
	switch typ {
	case "", "message":
		v.enum(item, "role", true, "user", "assistant", "system", "developer")
		checkParts(v, item, "content")
	case "function_call":
		v.str(item, "call_id", true)
		v.str(item, "name", true)
		v.str(item, "arguments", true)
	case "function_call_output":
		v.str(item, "call_id", true)
		if raw, ok := v.get(item, "output", true); ok && jsonKindOf(raw) != kString && jsonKindOf(raw) != kArray {
			v.fail(typeProblem(item.at.key("output"), wContent, raw))
		}
	}
}

// checkEmbedding checks a request for embeddings: POST /v1/embeddings.
// llama-server's older "content" stands for input.
func checkEmbedding(v *checker, o object) {
	v.str(o, "model", false)
	if raw, ok := v.get(o, "input", !o.has("content")); ok {
		switch jsonKindOf(raw) {
		case kString:
		case kArray:
			v.asList(where{"input"}, raw, wPrompt, true)
		default:
			v.fail(typeProblem(where{"input"}, wPrompt, raw))
		}
	}
	v.enum(o, "encoding_format", false, "float", "base64")
	v.integer(o, "dimensions", false, 1, maxCount)
}

package server

import (
	"bytes"
	"math"
)

// The rules of Ollama's /api/chat and /api/generate, as Ollama checks
// them, in plain words: a request that breaks one is answered
// {"error": "…"} before it is translated.

// checkOllamaCommon checks the fields chat and generate share.
func checkOllamaCommon(v *checker, o object) {
	if name, ok := v.str(o, "model", true); ok && name == "" {
		v.fail(&problem{kind: missing, at: where{"model"}})
	}
	v.boolean(o, "stream")
	if opts, ok := v.obj(o, "options", false); ok {
		v.number(opts, "num_predict", math.Inf(-1), math.Inf(1))
	}
	if raw, ok := v.get(o, "format", false); ok {
		f := string(bytes.TrimSpace(raw))
		if k := jsonKindOf(raw); k != kObject && f != `"json"` && f != `""` {
			got := plainGot[k]
			if k == kString {
				got = f
			}
			v.fail(&problem{kind: custom, msg: `format must be "json" or a JSON schema (an object), not ` + got})
		}
	}
	if raw, ok := v.get(o, "think", false); ok && jsonKindOf(raw) != kBool && jsonKindOf(raw) != kString {
		v.fail(typeProblem(where{"think"}, wThinking, raw))
	}
}

// checkOllamaChat checks POST /api/chat. No messages is Ollama's way to
// load the model.
func checkOllamaChat(v *checker, o object) {
	checkOllamaCommon(v, o)
	v.objects(o, "messages", false, false, func(m object) {
		if role, ok := v.str(m, "role", true); ok && role == "" {
			v.fail(&problem{kind: missing, at: m.at.key("role")})
		}
		v.str(m, "content", false)
		v.str(m, "thinking", false)
		v.strings(m, "images")
		v.str(m, "tool_name", false)
		v.objects(m, "tool_calls", false, false, func(tc object) {
			if f, ok := v.obj(tc, "function", true); ok {
				v.str(f, "name", true)
			}
		})
	})
	v.objects(o, "tools", false, false, func(object) {})
}

// checkOllamaGenerate checks POST /api/generate. No prompt is Ollama's
// way to load the model.
func checkOllamaGenerate(v *checker, o object) {
	checkOllamaCommon(v, o)
	for _, key := range []string{"prompt", "suffix", "system", "template"} {
		v.str(o, key, false)
	}
	v.boolean(o, "raw")
	v.strings(o, "images")
}

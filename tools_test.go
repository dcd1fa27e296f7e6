package main

import (
	"testing"

	"github.com/potluck-gpu/potluck/engine/enginetest"
)

// Tool calls and structured output reach every API, and every client
// parses them: the official OpenAI (chat and Responses), Anthropic and
// Ollama clients, and the Vercel AI SDK through each of its providers. The
// model calls a tool wherever a request offers one (ggufgen.ToolLlama), so
// what is tested is Potluck's and llama-server's part: the request's tools
// reach the template and its grammar, and the call comes back in each
// API's shape, whole and streamed.
func TestToolCalls(t *testing.T) {
	m := enginetest.ToolModel(t)
	ollama := freeAddr(t)
	// The model spells tools out byte by byte: a prompt that offers one
	// takes some 600 tokens, more than a slot of the default context.
	p := startPotluck(t, "--model", m.Path, "--ollama-api", ollama, "--ctx-size", "8192")
	p.WaitStatus(t, "model ready", modelReady)
	p.waitModels(t, "the tool model", func(ms []modelDoc) bool { return len(ms) == 1 && ms[0].ID == m.Alias })
	env := []string{"POTLUCK_BASE_URL=" + p.API, "POTLUCK_OLLAMA_URL=http://" + ollama, "POTLUCK_MODEL=" + m.Alias, "POTLUCK_TOOLS=1"}
	for _, script := range []string{"tools_openai.mjs", "tools_anthropic.mjs", "tools_ollama.mjs", "aisdk.mjs", "conformance.mjs"} {
		t.Run(script, func(t *testing.T) {
			res := runSDK(t, script, env...)
			if len(res.Nodes) != 1 {
				t.Errorf("%s: answered by %v, want this node", script, res.Nodes)
			}
		})
	}
}

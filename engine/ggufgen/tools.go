package ggufgen

import _ "embed"

// toolsTemplate is ToolLlama's chat template: ChatML turns, tools
// described in the system turn, an answer's calls as one JSON array within
// <tool_calls> tags. llama.cpp reads the call format from it, as it does
// from a real model's template.
//
//go:embed tools.jinja
var toolsTemplate string

// ToolCallStart is how ToolLlama begins a call: the template's opening tag,
// the array and the first key's quote, as one token. Its newline keeps it
// out of JSON strings, so that the model closes a string at once (its next
// preference) rather than filling it.
const ToolCallStart = "<tool_calls>\n[{\""

// ToolLlama returns a tiny llama that calls tools. Its random weights carry
// one preference: begin a tool call, then close what is open (a string, an
// array, an object), then end the text. So where a request offers tools,
// llama.cpp's grammar for the template's call format makes it call one at
// once, with arguments of the right shape (empty strings, some number),
// and a JSON schema gets a valid document. Anything else it answers with
// ToolCallStart over and over, until the token limit.
func ToolLlama() TinyLlama {
	m := DefaultTinyLlama()
	m.Context = 4096 // room for a prompt that spells out tools byte by byte
	m.Seed = 27
	m.ChatTemplate = toolsTemplate
	m.Pieces = []string{ToolCallStart, "]", "}"}
	m.Prefer = []string{ToolCallStart, `"`, "]", "}", "</s>"}
	return m
}

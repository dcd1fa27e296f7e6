package server_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/potluck-gpu/potluck/server"
)

// goNames are what must never reach a client: Go's types and the
// encoding/json package's own words.
var goNames = []string{"Go struct", "Go value", "server.", "[]", "map[", "json:", "interface {"}

// fakeBackend is a llama-server that records the bodies it gets and
// answers each with an empty chat completion.
type fakeBackend struct {
	mu     sync.Mutex
	bodies []string
}

func (f *fakeBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.bodies = append(f.bodies, string(b))
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, `{"id":"x","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`)
}

func (f *fakeBackend) take() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	b := f.bodies
	f.bodies = nil
	return b
}

// validationServer is a server of the model "m" whose one backend is
// fake; with a node when node is not nil.
func validationServer(t *testing.T, node server.Node) (api, ollama http.Handler, backend *fakeBackend) {
	t.Helper()
	backend = &fakeBackend{}
	ts := httptest.NewServer(backend)
	t.Cleanup(ts.Close)
	s, err := server.New(server.Config{Addr: "127.0.0.1:0", OllamaAddr: "127.0.0.1:0", MaxBody: 64 << 10},
		staticRouter{model: "m", backends: []server.Backend{{Node: "fake/1", BaseURL: ts.URL}}}, node, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s.Handler(), s.OllamaHandler(), backend
}

// send posts body to path on h as a client on this machine would.
func send(h http.Handler, method, path, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, "http://127.0.0.1"+path, strings.NewReader(body))
	req.Host = "127.0.0.1"
	req.RemoteAddr = "127.0.0.1:50000"
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// refusal is a 400 the test expects: the error type, and words its
// message holds (and for OpenAI, its param).
type refusal struct {
	name, path, body string
	status           int    // 0: 400
	typ              string // "": invalid_request_error
	param            string // OpenAI's param, when checked
	says             string // a part of the message
}

// checkRefusals sends each case to h and checks the error, in the shape
// of the API of its path, and that no backend saw it.
func checkRefusals(t *testing.T, h http.Handler, backend *fakeBackend, ollama bool, cases []refusal) {
	t.Helper()
	for _, tc := range cases {
		method := http.MethodPost
		if tc.path == "/api/delete" {
			method = http.MethodDelete
		}
		rec := send(h, method, tc.path, tc.body)
		want := tc.status
		if want == 0 {
			want = http.StatusBadRequest
		}
		typ := tc.typ
		if typ == "" {
			typ = "invalid_request_error"
		}
		var e struct {
			Type  string          `json:"type"`
			Error json.RawMessage `json:"error"`
		}
		var detail struct {
			Type, Message string
			Param         *string
		}
		json.Unmarshal(rec.Body.Bytes(), &e)
		msg := ""
		switch {
		case ollama:
			json.Unmarshal(e.Error, &msg)
		case strings.HasPrefix(tc.path, "/v1/messages"):
			json.Unmarshal(e.Error, &detail)
			msg = detail.Message
			if e.Type != "error" || detail.Type != typ {
				t.Errorf("%s: %s is not an Anthropic %s", tc.name, rec.Body, typ)
			}
		default:
			json.Unmarshal(e.Error, &detail)
			msg = detail.Message
			if detail.Type != typ {
				t.Errorf("%s: %s is not an OpenAI %s", tc.name, rec.Body, typ)
			}
			if tc.param != "" && (detail.Param == nil || *detail.Param != tc.param) {
				t.Errorf("%s: param %v, want %q: %s", tc.name, detail.Param, tc.param, rec.Body)
			}
		}
		if rec.Code != want || msg == "" || !strings.Contains(msg, tc.says) {
			t.Errorf("%s: %d %s, want %d saying %q", tc.name, rec.Code, rec.Body, want, tc.says)
		}
		for _, g := range goNames {
			if strings.Contains(msg, g) {
				t.Errorf("%s: the message shows Go's %q: %s", tc.name, g, msg)
			}
		}
		if got := backend.take(); len(got) > 0 {
			t.Errorf("%s: the backend got %q", tc.name, got)
		}
	}
}

func TestValidateOpenAIChat(t *testing.T) {
	h, _, backend := validationServer(t, nil)
	const chat = "/v1/chat/completions"
	user := `"messages":[{"role":"user","content":"hi"}]`
	checkRefusals(t, h, backend, false, []refusal{
		{"not JSON", chat, `{"messages":[`, 0, "", "", "request body is not valid JSON (at byte 13)"},
		{"not an object", chat, `[1,2]`, 0, "", "", "request body must be"},
		{"null", chat, `null`, 0, "", "", "must be a JSON object"},
		{"empty", chat, ``, 0, "", "", "request body is empty"},
		{"no messages", chat, `{"model":"m"}`, 0, "", "messages", "Missing required parameter: 'messages'."},
		{"messages a string", chat, `{"messages":"hi"}`, 0, "", "messages", "Invalid type for 'messages': expected an array of objects, but got a string instead."},
		{"messages null", chat, `{"messages":null}`, 0, "", "messages", "but got null instead"},
		{"no message", chat, `{"messages":[]}`, 0, "", "messages", "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead."},
		{"message a number", chat, `{"messages":[42]}`, 0, "", "messages[0]", "Invalid type for 'messages[0]': expected an object, but got an integer instead."},
		{"no role", chat, `{"messages":[{"content":"hi"}]}`, 0, "", "messages[0].role", "Missing required parameter: 'messages[0].role'."},
		{"bad role", chat, `{"messages":[{"role":"robot","content":"hi"}]}`, 0, "", "messages[0].role", "Invalid value: 'robot'. Supported values are: 'system', 'developer', 'user', 'assistant', 'tool', and 'function'."},
		{"no content", chat, `{"messages":[{"role":"user"}]}`, 0, "", "messages[0].content", "Missing required parameter"},
		{"content a number", chat, `{"messages":[{"role":"user","content":7}]}`, 0, "", "messages[0].content", "expected one of a string or array of objects, but got an integer instead"},
		{"part without type", chat, `{"messages":[{"role":"user","content":[{"text":"hi"}]}]}`, 0, "", "messages[0].content[0].type", "Missing required parameter"},
		{"text part without text", chat, `{"messages":[{"role":"user","content":[{"type":"text"}]}]}`, 0, "", "messages[0].content[0].text", "Missing"},
		{"tool without call id", chat, `{"messages":[{"role":"tool","content":"1"}]}`, 0, "", "messages[0].tool_call_id", "'messages[0].tool_call_id'"},
		{"max_tokens a string", chat, `{` + user + `,"max_tokens":"8"}`, 0, "", "max_tokens", "Invalid type for 'max_tokens': expected an integer, but got a string instead."},
		{"max_tokens a decimal", chat, `{` + user + `,"max_tokens":1.5}`, 0, "", "max_tokens", "but got a decimal instead"},
		{"max_tokens 0", chat, `{` + user + `,"max_tokens":0}`, 0, "", "max_tokens", "Invalid 'max_tokens': integer below minimum value. Expected a value >= 1, but got 0 instead."},
		{"max_tokens huge", chat, `{` + user + `,"max_tokens":99999999999999999999999}`, 0, "", "max_tokens", "integer above maximum value"},
		{"max_completion_tokens", chat, `{` + user + `,"max_completion_tokens":-1}`, 0, "", "max_completion_tokens", "below minimum"},
		{"n 0", chat, `{` + user + `,"n":0}`, 0, "", "n", "Expected a value >= 1"},
		{"temperature 3", chat, `{` + user + `,"temperature":3}`, 0, "", "temperature", "Expected a value <= 2, but got 3 instead."},
		{"temperature a string", chat, `{` + user + `,"temperature":"hot"}`, 0, "", "temperature", "expected a decimal, but got a string"},
		{"top_p 1.5", chat, `{` + user + `,"top_p":1.5}`, 0, "", "top_p", "decimal above maximum value"},
		{"stream a string", chat, `{` + user + `,"stream":"yes"}`, 0, "", "stream", "expected a boolean, but got a string"},
		{"model a number", chat, `{` + user + `,"model":5}`, 0, "", "model", "expected a string"},
		{"tool of no type", chat, `{` + user + `,"tools":[{"function":{"name":"f"}}]}`, 0, "", "tools[0].type", "Missing"},
		{"tool of another type", chat, `{` + user + `,"tools":[{"type":"fn","function":{"name":"f"}}]}`, 0, "", "tools[0].type", "Supported values are: 'function' and 'custom'."},
		{"tool without a name", chat, `{` + user + `,"tools":[{"type":"function","function":{}}]}`, 0, "", "tools[0].function.name", "Missing"},
		{"tool_choice", chat, `{` + user + `,"tool_choice":"always"}`, 0, "", "tool_choice", "Supported values are: 'none', 'auto', and 'required'."},
		{"tool_choice a number", chat, `{` + user + `,"tool_choice":1}`, 0, "", "tool_choice", "expected one of a string or object"},
		{"tool_choice without a name", chat, `{` + user + `,"tool_choice":{"type":"function","function":{}}}`, 0, "", "tool_choice.function.name", "Missing"},
		{"response_format", chat, `{` + user + `,"response_format":{"type":"xml"}}`, 0, "", "response_format.type", "Invalid value: 'xml'"},
		{"json_schema without one", chat, `{` + user + `,"response_format":{"type":"json_schema"}}`, 0, "", "response_format.json_schema", "Missing"},
		{"json_schema without a name", chat, `{` + user + `,"response_format":{"type":"json_schema","json_schema":{"schema":{}}}}`, 0, "", "response_format.json_schema.name", "Missing"},
		{"json_schema's schema a string", chat, `{` + user + `,"response_format":{"type":"json_schema","json_schema":{"name":"a","schema":"x"}}}`, 0, "", "response_format.json_schema.schema", "expected an object"},
	})
}

func TestValidateOpenAIOthers(t *testing.T) {
	h, _, backend := validationServer(t, nil)
	checkRefusals(t, h, backend, false, []refusal{
		{"completion without a prompt", "/v1/completions", `{"max_tokens":4}`, 0, "", "prompt", "Missing required parameter: 'prompt'."},
		{"completion's prompt a number", "/v1/completions", `{"prompt":5}`, 0, "", "prompt", "expected one of a string or array"},
		{"completion's max_tokens", "/v1/completions", `{"prompt":"x","max_tokens":-5}`, 0, "", "max_tokens", "Expected a value >= 0"},
		{"responses without input", "/v1/responses", `{"model":"m"}`, 0, "", "input", "Missing required parameter: 'input'."},
		{"responses' input a number", "/v1/responses", `{"input":5}`, 0, "", "input", "expected one of a string or array of input items"},
		{"responses' message without role", "/v1/responses", `{"input":[{"content":"hi"}]}`, 0, "", "input[0].role", "Missing"},
		{"responses' message without content", "/v1/responses", `{"input":[{"role":"user"}]}`, 0, "", "input[0].content", "Missing"},
		{"responses' call output without call_id", "/v1/responses", `{"input":[{"type":"function_call_output","output":"1"}]}`, 0, "", "input[0].call_id", "Missing"},
		{"responses' call output without output", "/v1/responses", `{"input":[{"type":"function_call_output","call_id":"c"}]}`, 0, "", "input[0].output", "Missing"},
		{"responses' call without a name", "/v1/responses", `{"input":[{"type":"function_call","call_id":"c","arguments":"{}"}]}`, 0, "", "input[0].name", "Missing"},
		{"responses' max_output_tokens", "/v1/responses", `{"input":"hi","max_output_tokens":0}`, 0, "", "max_output_tokens", "below minimum value"},
		{"responses' tool without a name", "/v1/responses", `{"input":"hi","tools":[{"type":"function"}]}`, 0, "", "tools[0].name", "Missing"},
		{"responses' text format", "/v1/responses", `{"input":"hi","text":{"format":{"type":"yaml"}}}`, 0, "", "text.format.type", "Invalid value: 'yaml'"},
		{"responses' schema without a name", "/v1/responses", `{"input":"hi","text":{"format":{"type":"json_schema","schema":{}}}}`, 0, "", "text.format.name", "Missing"},
		{"embeddings without input", "/v1/embeddings", `{"model":"m"}`, 0, "", "input", "Missing required parameter: 'input'."},
		{"embeddings of nothing", "/v1/embeddings", `{"input":[]}`, 0, "", "input", "empty array"},
		{"embeddings of a number", "/v1/embeddings", `{"input":5}`, 0, "", "input", "Invalid type for 'input'"},
		{"rerank's model", "/v1/rerank", `{"model":["m"],"query":"a","documents":["a"]}`, 0, "", "model", "expected a string"},
		{"huge", "/v1/completions", `{"prompt":"` + strings.Repeat("a", 70<<10) + `"}`, 413, "invalid_request_error", "", "larger than 64 KiB"},
	})
}

func TestValidateAnthropic(t *testing.T) {
	h, _, backend := validationServer(t, nil)
	const msgs = "/v1/messages"
	user := `"messages":[{"role":"user","content":"hi"}]`
	checkRefusals(t, h, backend, false, []refusal{
		{"not JSON", msgs, `{"model":`, 0, "", "", "not valid JSON"},
		{"no messages", msgs, `{"model":"m","max_tokens":8}`, 0, "", "", "messages: Field required"},
		{"messages a string", msgs, `{"max_tokens":8,"messages":"hi"}`, 0, "", "", "messages: Input should be a valid list"},
		{"messages an object", msgs, `{"max_tokens":8,"messages":{"role":"user"}}`, 0, "", "", "messages: Input should be a valid list"},
		{"messages 42", msgs, `{"max_tokens":8,"messages":42}`, 0, "", "", "messages: Input should be a valid list"},
		{"messages null", msgs, `{"max_tokens":8,"messages":null}`, 0, "", "", "messages: Input should be a valid list"},
		{"no message", msgs, `{"max_tokens":8,"messages":[]}`, 0, "", "", "messages: at least one message is required"},
		{"no max_tokens", msgs, `{"model":"m",` + user + `}`, 0, "", "", "max_tokens: Field required"},
		{"max_tokens a string", msgs, `{"max_tokens":"8",` + user + `}`, 0, "", "", "max_tokens: Input should be a valid integer"},
		{"max_tokens a decimal", msgs, `{"max_tokens":8.5,` + user + `}`, 0, "", "", "max_tokens: Input should be a valid integer, got a number with a fractional part"},
		{"max_tokens 0", msgs, `{"max_tokens":0,` + user + `}`, 0, "", "", "max_tokens: Input should be greater than or equal to 1"},
		{"message a string", msgs, `{"max_tokens":8,"messages":["hi"]}`, 0, "", "", "messages.0: Input should be a valid dictionary"},
		{"system role", msgs, `{"max_tokens":8,"messages":[{"role":"system","content":"hi"}]}`, 0, "", "", "messages.0.role: Input should be 'user' or 'assistant'"},
		{"no content", msgs, `{"max_tokens":8,"messages":[{"role":"user"}]}`, 0, "", "", "messages.0.content: Field required"},
		{"content a number", msgs, `{"max_tokens":8,"messages":[{"role":"user","content":1}]}`, 0, "", "", "messages.0.content: Input should be"},
		{"block without type", msgs, `{"max_tokens":8,"messages":[{"role":"user","content":[{"text":"hi"}]}]}`, 0, "", "", "messages.0.content.0.type: Field required"},
		{"tool_use without input", msgs, `{"max_tokens":8,"messages":[{"role":"assistant","content":[{"type":"tool_use","id":"t","name":"f"}]}]}`, 0, "", "", "messages.0.content.0.input: Field required"},
		{"tool_use's input a string", msgs, `{"max_tokens":8,"messages":[{"role":"assistant","content":[{"type":"tool_use","id":"t","name":"f","input":"{}"}]}]}`, 0, "", "", "messages.0.content.0.input: Input should be a valid dictionary"},
		{"tool_result without id", msgs, `{"max_tokens":8,"messages":[{"role":"user","content":[{"type":"tool_result","content":"1"}]}]}`, 0, "", "", "messages.0.content.0.tool_use_id: Field required"},
		{"system a number", msgs, `{"max_tokens":8,"system":1,` + user + `}`, 0, "", "", "system: Input should be a valid list"},
		{"system block of an image", msgs, `{"max_tokens":8,"system":[{"type":"image"}],` + user + `}`, 0, "", "", "system.0.type: Input should be 'text'"},
		{"tool without schema", msgs, `{"max_tokens":8,"tools":[{"name":"f"}],` + user + `}`, 0, "", "", "tools.0.input_schema: Field required"},
		{"tool without name", msgs, `{"max_tokens":8,"tools":[{"input_schema":{}}],` + user + `}`, 0, "", "", "tools.0.name: Field required"},
		{"tool_choice", msgs, `{"max_tokens":8,"tool_choice":{"type":"required"},` + user + `}`, 0, "", "", "tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'"},
		{"tool_choice without a name", msgs, `{"max_tokens":8,"tool_choice":{"type":"tool"},` + user + `}`, 0, "", "", "tool_choice.name: Field required"},
		{"temperature 1.5", msgs, `{"max_tokens":8,"temperature":1.5,` + user + `}`, 0, "", "", "temperature: Input should be less than or equal to 1"},
		{"stream a string", msgs, `{"max_tokens":8,"stream":"yes",` + user + `}`, 0, "", "", "stream: Input should be a valid boolean"},
		{"count without messages", msgs + "/count_tokens", `{"model":"m"}`, 0, "", "", "messages: Field required"},
		{"count of no message", msgs + "/count_tokens", `{"messages":[]}`, 0, "", "", "messages: at least one message is required"},
		{"huge", msgs, `{"max_tokens":8,` + user + `,"system":"` + strings.Repeat("a", 70<<10) + `"}`, 413, "request_too_large", "", "larger than 64 KiB"},
	})
}

// Requests the vendors take, and llama-server's own fields, reach the
// backend as they were sent, but for what llama-server reads in other
// words (rewriteRequest).
func TestValidRequestsPassUnchanged(t *testing.T) {
	h, _, backend := validationServer(t, nil)
	for _, tc := range []struct{ path, body string }{
		{"/v1/chat/completions", `{"messages":[{"role":"user","content":"hi"}],"max_tokens":2}`},
		{"/v1/chat/completions", `{"model":"m","messages":[{"role":"system","content":"be brief"},{"role":"user","content":[{"type":"text","text":"hi"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AA=="}}]},` +
			`{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","tool_call_id":"c1","content":"1"}],` +
			`"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],"tool_choice":{"type":"function","function":{"name":"f"}},` +
			`"response_format":{"type":"json_schema","json_schema":{"name":"r","schema":{"type":"object"}}},"temperature":0,"top_p":1,"n":1,"seed":-1,"stream":false,` +
			`"stream_options":null,"max_completion_tokens":8,"cache_prompt":true,"n_predict":4,"grammar":"root ::= \"a\"","chat_template_kwargs":{"enable_thinking":false}}`},
		{"/v1/chat/completions", `{"messages":[{"role":"developer","content":"x"},{"role":"user","content":"hi","name":"bob"}],"tool_choice":"auto","response_format":{"type":"json_object","schema":{}}}`},
		{"/v1/completions", `{"prompt":"Once","max_tokens":4,"temperature":0}`},
		{"/v1/completions", `{"model":"m","prompt":"","max_tokens":8,"temperature":0,"seed":1,"ignore_eos":true}`},
		{"/v1/completions", `{"prompt":[1,2,3],"max_tokens":0,"echo":true}`},
		{"/v1/responses", `{"model":"m","input":"Tell me a story","max_output_tokens":8,"temperature":0}`},
		{"/v1/responses", `{"input":[{"role":"user","content":"hi"},{"type":"message","role":"assistant","content":[{"type":"output_text","text":"ok"}]},` +
			`{"type":"function_call","call_id":"c","name":"f","arguments":"{}"},{"type":"function_call_output","call_id":"c","output":"1"},{"type":"reasoning","summary":[]}],` +
			`"tools":[{"type":"function","name":"f","parameters":{}},{"type":"web_search"}],"tool_choice":"required","text":{"format":{"type":"json_schema","name":"r","schema":{}}}}`},
		{"/v1/responses", `{"previous_response_id":"resp_1"}`},
		{"/v1/messages", `{"model":"m","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}`},
		{"/v1/messages", `{"max_tokens":8,"system":[{"type":"text","text":"be brief","cache_control":{"type":"ephemeral"}}],"messages":[{"role":"user","content":[{"type":"text","text":"hi"},` +
			`{"type":"image","source":{"type":"base64","media_type":"image/png","data":"AA=="}}]},{"role":"assistant","content":[{"type":"thinking","thinking":"hm","signature":"s"},` +
			`{"type":"tool_use","id":"t","name":"f","input":{}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":[{"type":"text","text":"1"}]}]}],` +
			`"tools":[{"name":"f","input_schema":{"type":"object"}},{"type":"web_search_20250305","name":"web_search"}],"tool_choice":{"type":"tool","name":"f"},` +
			`"thinking":{"type":"enabled","budget_tokens":1024},"temperature":1,"top_k":5,"stop_sequences":["x"],"metadata":{"user_id":"u"},"stream":false}`},
		{"/v1/messages/count_tokens", `{"model":"m","messages":[{"role":"user","content":"hi"}]}`},
		{"/v1/embeddings", `{"model":"m","input":["a story","a cat"]}`},
		{"/v1/embeddings", `{"content":"a story"}`},
		{"/v1/rerank", `{"model":"m","query":"a","documents":["a","b"]}`},
	} {
		rec := send(h, http.MethodPost, tc.path, tc.body)
		got := backend.take()
		// As it came, but for what llama-server reads in other words.
		if want := string(server.RewriteRequest(tc.path, []byte(tc.body))); len(got) != 1 || got[0] != want {
			t.Errorf("%s %s: %d %s; the backend got %q", tc.path, tc.body, rec.Code, rec.Body, got)
		}
	}
}

// The node API and the Ollama API say what is wrong with a body in plain
// words, and refuse one over their limit with a 413.
func TestValidateOllamaAndAdmin(t *testing.T) {
	node := &recordingNode{}
	h, oh, backend := validationServer(t, node)
	big := `{"model":"m","prompt":"` + strings.Repeat("a", 70<<10) + `"}`
	checkRefusals(t, oh, backend, true, []refusal{
		{"chat without a model", "/api/chat", `{"messages":[{"role":"user","content":"hi"}]}`, 0, "", "", "model is required"},
		{"chat of an empty model", "/api/chat", `{"model":"","messages":[]}`, 0, "", "", "model is required"},
		{"chat, messages a string", "/api/chat", `{"model":"m","messages":"hi"}`, 0, "", "", "messages: expected an array of objects, got a string"},
		{"chat, message a number", "/api/chat", `{"model":"m","messages":[1]}`, 0, "", "", "messages[0]: expected an object, got an integer"},
		{"chat without a role", "/api/chat", `{"model":"m","messages":[{"content":"hi"}]}`, 0, "", "", "messages[0].role is required"},
		{"chat, content an array", "/api/chat", `{"model":"m","messages":[{"role":"user","content":[{"type":"text"}]}]}`, 0, "", "", "messages[0].content: expected a string, got an array"},
		{"chat, images a string", "/api/chat", `{"model":"m","messages":[{"role":"user","content":"x","images":"aGk="}]}`, 0, "", "", "messages[0].images: expected an array of strings"},
		{"chat, format yaml", "/api/chat", `{"model":"m","messages":[{"role":"user","content":"hi"}],"format":"yaml"}`, 0, "", "", `format must be "json" or a JSON schema (an object), not "yaml"`},
		{"chat, format an array", "/api/chat", `{"model":"m","format":[1]}`, 0, "", "", "not an array"},
		{"chat, options a string", "/api/chat", `{"model":"m","options":"fast"}`, 0, "", "", "options: expected an object, got a string"},
		{"chat, num_predict an object", "/api/chat", `{"model":"m","options":{"num_predict":{"a":1}}}`, 0, "", "", "options.num_predict: expected a number, got an object"},
		{"chat, stream a string", "/api/chat", `{"model":"m","stream":"no"}`, 0, "", "", "stream: expected true or false, got a string"},
		{"chat, think a number", "/api/chat", `{"model":"m","think":1}`, 0, "", "", "think: expected true, false or a string"},
		{"chat, keep_alive", "/api/chat", `{"model":"m","keep_alive":"soon"}`, 0, "", "", `keep_alive "soon" is not a duration`},
		{"chat, not JSON", "/api/chat", `{"model":`, 0, "", "", "request body is not valid JSON (at byte 9)"},
		{"generate without a model", "/api/generate", `{"prompt":"hi"}`, 0, "", "", "model is required"},
		{"generate, prompt a number", "/api/generate", `{"model":"m","prompt":5}`, 0, "", "", "prompt: expected a string, got an integer"},
		{"generate, raw a string", "/api/generate", `{"model":"m","prompt":"x","raw":"yes"}`, 0, "", "", "raw: expected true or false"},
		{"generate, too big", "/api/generate", big, 413, "", "", "larger than 64 KiB"},
		{"embed, input an object", "/api/embeddings", `{"model":"m","prompt":{"a":1}}`, 0, "", "", "prompt: expected a string, got an object"},
		{"show, model a number", "/api/show", `{"model":5}`, 0, "", "", "model: expected a string, got a number"},
		{"pull, too big", "/api/pull", `{"model":"` + strings.Repeat("a", 1<<20) + `"}`, 413, "", "", "larger than 1 MiB"},
		{"delete, name a list", "/api/delete", `{"model":["a"]}`, 0, "", "", "model: expected a string, got an array"},
	})
	checkRefusals(t, h, backend, false, []refusal{
		{"join, token a number", "/api/join", `{"token":5}`, 0, "", "", "token: expected a string, got a number"},
		{"join, not JSON", "/api/join", `{"token":"a"}garbage`, 0, "", "", "request body is not valid JSON (at byte 14)"},
		{"join, not an object", "/api/join", `["potluck1.x"]`, 0, "", "", "request body must be an object, got an array"},
		{"devices, a string", "/api/devices", `{"devices":"CUDA0"}`, 0, "", "", "devices: expected an array of strings, got a string"},
		{"serve, embeddings a string", "/api/serve", `{"model":"m","embeddings":"yes"}`, 0, "", "", "embeddings: expected true or false, got a string"},
		{"pull, stream a number", "/api/pull", `{"model":"a/b","stream":1}`, 0, "", "", "stream: expected true or false, got a number"},
		{"share, mode a number", "/api/share", `{"mode":1}`, 0, "", "", "mode: expected a string, got a number"},
		{"too big", "/api/join", `{"token":"` + strings.Repeat("a", 1<<20) + `"}`, 413, "", "", "larger than 1 MiB"},
	})
	if node.called() {
		t.Error("a refused body drove the node")
	}
	// What the Ollama API took before still loads or reaches a backend.
	for _, body := range []string{
		`{"model":"m","messages":[]}`,
		`{"model":"m:latest","messages":[{"role":"user","content":"hi","images":["aGk="]}],"options":{"num_predict":4},"format":"json","think":false,"stream":false}`,
		`{"model":"m","messages":[{"role":"assistant","tool_calls":[{"function":{"name":"f","arguments":{"a":1}}}]},{"role":"tool","content":"1"}],"tools":[{"type":"function","function":{"name":"f"}}],"format":{"type":"object"},"stream":false}`,
	} {
		if rec := send(oh, http.MethodPost, "/api/chat", body); rec.Code != http.StatusOK {
			t.Errorf("chat %s: %d %s", body, rec.Code, rec.Body)
		}
	}
	backend.take()
	if rec := send(oh, http.MethodPost, "/api/generate", `{"model":"m","prompt":"Once","raw":true,"stream":false,"format":""}`); rec.Code != http.StatusOK ||
		len(backend.take()) != 1 {
		t.Errorf("generate: %d %s", rec.Code, rec.Body)
	}
	if !bytes.Contains(send(h, http.MethodPost, "/api/join", `{"token":"potluck1.x"}`).Body.Bytes(), []byte("state")) {
		t.Error("join with a good body did not reach the node")
	}
}

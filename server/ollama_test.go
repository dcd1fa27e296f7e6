package server_test

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/potluck-gpu/potluck/server"
)

// ollamaLines reads an NDJSON answer.
func ollamaLines(t *testing.T, resp *http.Response) []map[string]any {
	t.Helper()
	defer resp.Body.Close()
	var out []map[string]any
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		var v map[string]any
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		out = append(out, v)
	}
	return out
}

func TestOllamaAPI(t *testing.T) {
	router, m := apiBackends(t)
	ts := newOllama(t, server.Config{Version: "1.2.3"}, router, nil)
	model := m.Alias + ":latest" // as Ollama's clients name models

	resp, err := http.Get(ts.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "Ollama is running" {
		t.Errorf("GET / = %q", body)
	}
	var version struct{ Version, Potluck string }
	if err := getJSON(ts.URL+"/api/version", &version); err != nil || version.Version == "" || version.Potluck != "1.2.3" {
		t.Errorf("version %+v, %v", version, err)
	}
	var tags struct {
		Models []struct {
			Name    string
			Size    int64
			Details struct {
				Format, Family    string
				ParameterSize     string `json:"parameter_size"`
				QuantizationLevel string `json:"quantization_level"`
			}
		}
	}
	if err := getJSON(ts.URL+"/api/tags", &tags); err != nil || len(tags.Models) != 2 || tags.Models[0].Name != m.Alias ||
		tags.Models[0].Details.Family != "llama" || tags.Models[0].Details.ParameterSize != "293K" || tags.Models[0].Details.QuantizationLevel != "F32" ||
		tags.Models[0].Size != 1_171_200 {
		t.Errorf("tags %+v, %v", tags, err)
	}
	var ps struct{ Models []struct{ Name string } }
	if err := getJSON(ts.URL+"/api/ps", &ps); err != nil || len(ps.Models) != 2 {
		t.Errorf("ps %+v, %v", ps, err)
	}

	resp = post(t, ts.URL+"/api/show", `{"model":"`+model+`"}`)
	show := decode(t, resp)
	if caps, _ := show["capabilities"].([]any); resp.StatusCode != 200 || len(caps) != 2 || caps[1] != "embedding" {
		t.Errorf("show: %s %v", resp.Status, show)
	}
	resp = post(t, ts.URL+"/api/show", `{"model":"llama3"}`)
	if r := decode(t, resp); resp.StatusCode != 404 || !strings.Contains(r["error"].(string), m.Alias) {
		t.Errorf("show an unknown model: %s %v", resp.Status, r)
	}

	// A chat, whole and streamed (the default), greedy: the same words.
	chat := `{"model":"` + model + `","messages":[{"role":"user","content":"Tell me a story"}],"options":{"temperature":0,"num_predict":12}`
	resp = post(t, ts.URL+"/api/chat", chat+`,"stream":false}`)
	whole := decode(t, resp)
	msg, _ := whole["message"].(map[string]any)
	if resp.StatusCode != 200 || whole["done"] != true || whole["model"] != model || msg["role"] != "assistant" ||
		msg["content"] == "" || whole["eval_count"].(float64) < 1 || whole["eval_count"].(float64) > 12 || resp.Header.Get("X-Potluck-Node") == "" {
		t.Errorf("chat: %s %v", resp.Status, whole)
	}
	resp = post(t, ts.URL+"/api/chat", chat+`}`)
	lines := ollamaLines(t, resp)
	streamed := ""
	for _, l := range lines[:len(lines)-1] {
		streamed += l["message"].(map[string]any)["content"].(string)
	}
	last := lines[len(lines)-1]
	if resp.Header.Get("Content-Type") != "application/x-ndjson" || len(lines) < 3 || last["done"] != true ||
		streamed != msg["content"] || last["eval_count"] != whole["eval_count"] {
		t.Errorf("streamed chat %q, want %q: %v", streamed, msg["content"], lines)
	}

	// Generate: raw continues the prompt, as /v1/completions does.
	resp = post(t, ts.URL+"/v1/completions", `{}`) // the Ollama listener has no /v1
	if r := decode(t, resp); resp.StatusCode != 404 || r["error"] == nil {
		t.Errorf("/v1 on the Ollama listener: %s %v", resp.Status, r)
	}
	resp = post(t, ts.URL+"/api/generate", `{"model":"`+model+`","prompt":"Once upon a time","raw":true,"stream":false,"options":{"temperature":0,"num_predict":10}}`)
	gen := decode(t, resp)
	if resp.StatusCode != 200 || gen["done"] != true || gen["response"] == "" {
		t.Errorf("generate raw: %s %v", resp.Status, gen)
	}
	if m.Stories && !strings.HasPrefix(gen["response"].(string), ", there was a little girl") {
		t.Errorf("generate raw = %q, want stories260K's greedy continuation", gen["response"])
	}
	resp = post(t, ts.URL+"/api/generate", `{"model":"`+model+`","prompt":"Tell me a story","system":"You tell stories.","options":{"num_predict":6}}`)
	lines = ollamaLines(t, resp)
	if last := lines[len(lines)-1]; last["done"] != true || len(lines) < 2 || lines[0]["response"] == nil {
		t.Errorf("generate streamed: %v", lines)
	}
	resp = post(t, ts.URL+"/api/generate", `{"model":"`+model+`"}`)
	if r := decode(t, resp); r["done_reason"] != "load" || r["response"] != "" || r["done"] != true {
		t.Errorf("generate with no prompt: %v", r)
	}
	resp = post(t, ts.URL+"/api/chat", `{"model":"`+model+`","messages":[]}`)
	if r := decode(t, resp); r["done_reason"] != "load" || r["message"].(map[string]any)["role"] != "assistant" {
		t.Errorf("chat with no messages: %v", r)
	}
	resp = post(t, ts.URL+"/api/generate", `{"model":"`+model+`","prompt":"def f(","suffix":"return x","stream":false}`)
	if r := decode(t, resp); resp.StatusCode != 501 || !strings.Contains(r["error"].(string), "fill in the middle") {
		t.Errorf("generate with a suffix from a model without infill tokens: %s %v", resp.Status, r)
	}

	// Embeddings come from the backend that has them on.
	resp = post(t, ts.URL+"/api/embed", `{"model":"`+model+`","input":["a story","a cat"]}`)
	emb := decode(t, resp)
	if vecs, _ := emb["embeddings"].([]any); resp.StatusCode != 200 || len(vecs) != 2 || len(vecs[0].([]any)) != 64 ||
		resp.Header.Get("X-Potluck-Node") != "embed/2" {
		t.Errorf("embed: %s from %q: %v", resp.Status, resp.Header.Get("X-Potluck-Node"), emb)
	}
	resp = post(t, ts.URL+"/api/embeddings", `{"model":"`+model+`","prompt":"a story"}`)
	if r := decode(t, resp); resp.StatusCode != 200 || len(r["embedding"].([]any)) != 64 {
		t.Errorf("embeddings (the older route): %s %v", resp.Status, r)
	}

	// Errors in Ollama's shape.
	for _, tc := range []struct {
		path, body string
		status     int
	}{
		{"/api/chat", `{"model":"llama3","messages":[{"role":"user","content":"hi"}]}`, 404},
		{"/api/chat", `{"model":`, 400},
		{"/api/chat", `{"model":"` + model + `","messages":[{"content":"hi"}]}`, 400},
		{"/api/chat", `{"model":"` + model + `","messages":[{"role":"user","content":"hi"}],"format":"yaml"}`, 400},
		{"/api/chat", `{"model":"llama3","messages":[]}`, 404},
		{"/api/embed", `{"model":"` + model + `"}`, 400},
		{"/api/rerank", `{"model":"tiny-rerank"}`, 404},
		{"/api/create", `{"model":"x"}`, 501},
		{"/api/pull", `{"model":"x"}`, 404}, // no node API behind this server
	} {
		resp := post(t, ts.URL+tc.path, tc.body)
		var e struct {
			Error string `json:"error"`
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || json.Unmarshal(raw, &e) != nil || e.Error == "" {
			t.Errorf("%s %s: %s %s, want %d with an Ollama error", tc.path, tc.body, resp.Status, raw, tc.status)
		}
	}
}

func getJSON(url string, v any) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return &httpStatusError{resp.Status}
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

type httpStatusError struct{ status string }

func (e *httpStatusError) Error() string { return e.status }

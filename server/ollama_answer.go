package server

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
)

// Answers of llama-server's OpenAI API, translated into Ollama's.

// openAIAnswer is a chat completion, a completion, one chunk of a stream
// of either, or an answer of llama-server's own /infill: the fields an
// Ollama answer takes from them.
type openAIAnswer struct {
	Choices []struct {
		Delta   openAIMessage `json:"delta"`
		Message openAIMessage `json:"message"`
		Text    string        `json:"text"`
		Finish  *string       `json:"finish_reason"`
	} `json:"choices"`
	Usage *struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
	} `json:"usage"`
	Timings *struct {
		PromptN     int     `json:"prompt_n"`
		PromptMS    float64 `json:"prompt_ms"`
		PredictedN  int     `json:"predicted_n"`
		PredictedMS float64 `json:"predicted_ms"`
	} `json:"timings"`
	// llama-server's own API (/infill).
	Content  string `json:"content"`
	Stop     bool   `json:"stop"`
	StopType string `json:"stop_type"`
}

type openAIMessage struct {
	Content   string           `json:"content"`
	Reasoning string           `json:"reasoning_content"`
	ToolCalls []openAIToolCall `json:"tool_calls"`
}

type openAIToolCall struct {
	Index    int `json:"index"`
	Function struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

// ollamaOut is one line of an Ollama answer, or the whole of one.
type ollamaOut struct {
	Model     string         `json:"model"`
	CreatedAt time.Time      `json:"created_at"`
	Message   *ollamaMessage `json:"message,omitempty"`  // chat
	Response  *string        `json:"response,omitempty"` // generate
	Thinking  string         `json:"thinking,omitempty"` // generate
	Done      bool           `json:"done"`
	// DoneReason says why the answer ended ("stop", "length"), or what
	// an answer that loads or unloads the model did.
	DoneReason string `json:"done_reason,omitempty"`
	// The counts, on the last line of an answer only, where Ollama's
	// clients read every one of them, zeros included.
	*ollamaStats
}

// ollamaStats are the counts and durations (in nanoseconds) that end an
// Ollama answer.
type ollamaStats struct {
	TotalDuration      int64 `json:"total_duration"`
	LoadDuration       int64 `json:"load_duration"`
	PromptEvalCount    int   `json:"prompt_eval_count"`
	PromptEvalDuration int64 `json:"prompt_eval_duration"`
	EvalCount          int   `json:"eval_count"`
	EvalDuration       int64 `json:"eval_duration"`
}

// ollamaAnswer writes an answer of /api/chat (chat) or /api/generate.
type ollamaAnswer struct {
	chat   bool
	model  string // as the client named it
	stream bool
	start  time.Time
}

// ollamaFailure answers a backend's error in Ollama's shape.
func ollamaFailure(c *gin.Context, resp *http.Response, first []byte) delivery {
	rest, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	msg := backendMessage(append(bytes.Clone(first), rest...))
	if msg == "" {
		msg = http.StatusText(resp.StatusCode)
	}
	c.JSON(resp.StatusCode, gin.H{"error": msg})
	return delivery{broken: err != nil, err: err}
}

// collected is what an answer said, gathered as it streams.
type collected struct {
	text, thinking string
	calls          []openAIToolCall
	finish         string
	ended          bool // the backend said the answer is complete
	stats          ollamaStats
}

// add takes in one chunk (or a whole answer) and returns the text and
// thinking it adds.
func (k *collected) add(a openAIAnswer) (text, thinking string) {
	for _, ch := range a.Choices {
		m := ch.Delta
		if m.Content == "" && m.Reasoning == "" && len(m.ToolCalls) == 0 {
			m = ch.Message
		}
		text += m.Content + ch.Text
		thinking += m.Reasoning
		for _, tc := range m.ToolCalls {
			k.addCall(tc)
		}
		if ch.Finish != nil && *ch.Finish != "" {
			k.finish, k.ended = *ch.Finish, true
		}
	}
	text += a.Content
	if a.Stop {
		k.ended = true
		k.finish = "stop"
		if a.StopType == "limit" {
			k.finish = "length"
		}
	}
	if u := a.Usage; u != nil {
		k.stats.PromptEvalCount, k.stats.EvalCount = u.PromptTokens, u.CompletionTokens
	}
	if t := a.Timings; t != nil {
		k.stats.PromptEvalDuration, k.stats.EvalDuration = int64(t.PromptMS*1e6), int64(t.PredictedMS*1e6)
		if k.stats.EvalCount == 0 {
			k.stats.PromptEvalCount, k.stats.EvalCount = t.PromptN, t.PredictedN
		}
	}
	k.text += text
	k.thinking += thinking
	return text, thinking
}

// addCall joins a tool call, or a piece of one as a stream sends it.
func (k *collected) addCall(tc openAIToolCall) {
	for i := range k.calls {
		if k.calls[i].Index == tc.Index {
			k.calls[i].Function.Name += tc.Function.Name
			k.calls[i].Function.Arguments += tc.Function.Arguments
			return
		}
	}
	k.calls = append(k.calls, tc)
}

// ollamaCalls are the tool calls in Ollama's shape: arguments an object.
func (k *collected) ollamaCalls() []ollamaToolCall {
	var out []ollamaToolCall
	for _, tc := range k.calls {
		args := json.RawMessage(tc.Function.Arguments)
		if !json.Valid(args) {
			args, _ = json.Marshal(tc.Function.Arguments)
		}
		out = append(out, ollamaToolCall{Function: ollamaFunction{Index: tc.Index, Name: tc.Function.Name, Arguments: args}})
	}
	return out
}

// line is one line of the answer, with text and thinking.
func (a ollamaAnswer) line(text, thinking string) ollamaOut {
	o := ollamaOut{Model: a.model, CreatedAt: time.Now().UTC()}
	if a.chat {
		o.Message = &ollamaMessage{Role: "assistant", Content: text, Thinking: thinking}
	} else {
		o.Response, o.Thinking = &text, thinking
	}
	return o
}

// last is the line that ends the answer.
func (a ollamaAnswer) last(k *collected, text, thinking string) ollamaOut {
	o := a.line(text, thinking)
	o.Done = true
	stats := k.stats
	o.ollamaStats = &stats
	o.DoneReason = "stop"
	if k.finish == "length" {
		o.DoneReason = "length"
	}
	o.TotalDuration = time.Since(a.start).Nanoseconds()
	return o
}

func (a ollamaAnswer) respond(c *gin.Context, resp *http.Response, first []byte) delivery {
	if resp.StatusCode >= 400 {
		return ollamaFailure(c, resp, first)
	}
	body := io.MultiReader(bytes.NewReader(first), resp.Body)
	k := &collected{}
	if !a.stream {
		var ans openAIAnswer
		if err := json.NewDecoder(body).Decode(&ans); err != nil {
			c.JSON(http.StatusBadGateway, gin.H{"error": "the model's answer could not be read: " + err.Error()})
			return delivery{broken: true, err: err}
		}
		k.add(ans)
		o := a.last(k, k.text, k.thinking)
		if a.chat {
			o.Message.ToolCalls = k.ollamaCalls()
		}
		c.JSON(http.StatusOK, o)
		return delivery{tokens: k.stats.EvalCount}
	}

	c.Header("Content-Type", "application/x-ndjson")
	c.Status(http.StatusOK)
	enc := json.NewEncoder(c.Writer)
	send := func(v any) bool {
		if enc.Encode(v) != nil {
			return false
		}
		c.Writer.Flush()
		return true
	}
	r := bufio.NewReaderSize(body, 64<<10)
	var d delivery
	for {
		raw, err := r.ReadBytes('\n')
		if data, ok := bytes.CutPrefix(bytes.TrimSpace(raw), []byte("data:")); ok {
			data = bytes.TrimSpace(data)
			if string(data) == "[DONE]" {
				k.ended = true
				break
			}
			var chunk openAIAnswer
			if json.Unmarshal(data, &chunk) == nil {
				text, thinking := k.add(chunk)
				if (text != "" || thinking != "") && !send(a.line(text, thinking)) {
					return delivery{broken: true, tokens: k.stats.EvalCount}
				}
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				d.err = err
			}
			break
		}
	}
	d.tokens = k.stats.EvalCount
	if !k.ended {
		d.broken = true
		send(gin.H{"error": "the model's answer broke off"})
		return d
	}
	if calls := k.ollamaCalls(); a.chat && len(calls) > 0 {
		o := a.line("", "")
		o.Message.ToolCalls = calls
		send(o)
	}
	send(a.last(k, "", ""))
	return d
}

// ollamaEmbedding writes an answer of /api/embed, or of the older
// /api/embeddings (legacy).
type ollamaEmbedding struct {
	model  string
	legacy bool
	start  time.Time
}

func (e ollamaEmbedding) respond(c *gin.Context, resp *http.Response, first []byte) delivery {
	if resp.StatusCode >= 400 {
		return ollamaFailure(c, resp, first)
	}
	var ans struct {
		Data []struct {
			Index     int       `json:"index"`
			Embedding []float64 `json:"embedding"`
		} `json:"data"`
		Usage struct {
			PromptTokens int `json:"prompt_tokens"`
		} `json:"usage"`
	}
	if err := json.NewDecoder(io.MultiReader(bytes.NewReader(first), resp.Body)).Decode(&ans); err != nil {
		c.JSON(http.StatusBadGateway, gin.H{"error": "the model's embeddings could not be read: " + err.Error()})
		return delivery{broken: true, err: err}
	}
	vecs := make([][]float64, len(ans.Data))
	for i, d := range ans.Data {
		if d.Index >= 0 && d.Index < len(vecs) && vecs[d.Index] == nil {
			vecs[d.Index] = d.Embedding
		} else {
			vecs[i] = d.Embedding
		}
	}
	if e.legacy {
		var v []float64
		if len(vecs) > 0 {
			v = vecs[0]
		}
		c.JSON(http.StatusOK, gin.H{"embedding": v})
		return delivery{}
	}
	c.JSON(http.StatusOK, gin.H{
		"model": e.model, "embeddings": vecs,
		"total_duration": time.Since(e.start).Nanoseconds(), "load_duration": 0,
		"prompt_eval_count": ans.Usage.PromptTokens,
	})
	return delivery{}
}

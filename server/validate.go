package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
)

// Requests are checked here before a backend sees them, as the vendor of
// each API checks them: a request OpenAI or Anthropic would refuse is
// refused with a 400 in that vendor's words, naming the field, rather
// than reaching llama-server, which takes much of it as it comes. Only
// the fields a vendor defines are checked, and only as far as it does:
// unknown fields, llama-server's own among them (cache_prompt, n_predict,
// grammar), pass, and the body goes on as sent, but for the few fields
// rewriteRequest says in llama-server's words.

// maxCount is the largest token count a request may ask for: llama-server
// reads counts into 32-bit integers.
const maxCount = math.MaxInt32

// validRequest checks the body of a request to the main API by the rules
// of the API of its path; false when it answered the error.
func validRequest(c *gin.Context, body []byte) bool {
	return checkBody(c, body, func(v *checker, o object) {
		switch c.Request.URL.Path {
		case "/v1/chat/completions":
			checkChat(v, o)
		case "/v1/completions":
			checkCompletion(v, o)
		case "/v1/responses":
			checkResponse(v, o)
		case "/v1/embeddings":
			checkEmbedding(v, o)
		case "/v1/messages":
			checkMessages(v, o, false)
		case "/v1/messages/count_tokens":
			checkMessages(v, o, true)
		default:
			v.str(o, "model", false)
			v.boolean(o, "stream")
		}
		v.integer(o, "max_tokens", false, math.MinInt32, maxCount) // the proxy reads it
	})
}

// checkBody checks that body is a JSON object that check finds nothing
// wrong with; false when it answered the first problem.
func checkBody(c *gin.Context, body []byte, check func(*checker, object)) bool {
	o, p := parseRequest(body)
	if p == nil {
		v := &checker{}
		check(v, o)
		p = v.p
	}
	if p != nil {
		reject(c, p)
		return false
	}
	return true
}

// parseRequest reads a request body, which must be a JSON object.
func parseRequest(body []byte) (object, *problem) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil || fields == nil {
		msg := "request body must be a JSON object, got null"
		if err != nil {
			msg = jsonProblem(body, err)
		}
		return object{}, &problem{kind: custom, msg: msg}
	}
	return object{fields: fields}, nil
}

// reject answers p as a 400 in the shape and words of the client's API.
func reject(c *gin.Context, p *problem) {
	d := dialectOf(c)
	msg := p.message(d)
	if d != dialectOpenAI {
		apiError(c, http.StatusBadRequest, "invalid_request_error", msg)
		return
	}
	var param, code any // null where none applies, as OpenAI writes them
	if len(p.at) > 0 {
		param = p.at.openAI()
	}
	if s := p.code(); s != "" {
		code = s
	}
	c.JSON(http.StatusBadRequest, gin.H{"error": gin.H{"message": msg, "type": "invalid_request_error", "param": param, "code": code}})
}

// where is the place of a value in a request: the keys and indexes that
// lead to it from the top.
type where []any

func (w where) key(k string) where { return append(w[:len(w):len(w)], k) }
func (w where) index(i int) where  { return append(w[:len(w):len(w)], i) }

// openAI writes w as OpenAI's errors do: messages[0].content. Ollama's
// errors write it so too.
func (w where) openAI() string {
	var b strings.Builder
	for _, p := range w {
		switch p := p.(type) {
		case int:
			fmt.Fprintf(&b, "[%d]", p)
		case string:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(p)
		}
	}
	return b.String()
}

// dotted writes w as Anthropic's errors do: messages.0.content.
func (w where) dotted() string {
	parts := make([]string, len(w))
	for i, p := range w {
		parts[i] = fmt.Sprint(p)
	}
	return strings.Join(parts, ".")
}

// jsonKind is the kind of a JSON value, integers apart from other numbers.
type jsonKind int

const (
	kNull jsonKind = iota
	kString
	kInteger
	kDecimal
	kBool
	kObject
	kArray
)

// jsonKindOf is the kind of raw, a valid JSON value.
func jsonKindOf(raw json.RawMessage) jsonKind {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return kNull
	}
	switch raw[0] {
	case '"':
		return kString
	case '{':
		return kObject
	case '[':
		return kArray
	case 't', 'f':
		return kBool
	case 'n':
		return kNull
	}
	if bytes.ContainsAny(raw, ".eE") {
		return kDecimal
	}
	return kInteger
}

// openAIGot and plainGot name a value's kind in an error, as OpenAI's
// errors and the plain ones (Ollama's) do.
var (
	openAIGot = [...]string{kNull: "null", kString: "a string", kInteger: "an integer", kDecimal: "a decimal",
		kBool: "a boolean", kObject: "an object", kArray: "an array"}
	plainGot = [...]string{kNull: "null", kString: "a string", kInteger: "an integer", kDecimal: "a number with a fraction",
		kBool: "true or false", kObject: "an object", kArray: "an array"}
)

// want is the type a field should have, in the words of each API's
// errors: OpenAI's "expected …", Anthropic's "Input should be …", and the
// plain ones.
type want struct{ openAI, anthropic, plain string }

var (
	wString   = want{"a string", "a valid string", "a string"}
	wInteger  = want{"an integer", "a valid integer", "an integer"}
	wNumber   = want{"a decimal", "a valid number", "a number"}
	wBool     = want{"a boolean", "a valid boolean", "true or false"}
	wObject   = want{"an object", "a valid dictionary", "an object"}
	wObjects  = want{"an array of objects", "a valid list", "an array of objects"}
	wStrings  = want{"an array of strings", "a valid list", "an array of strings"}
	wContent  = want{"one of a string or array of objects", "a valid string or a valid list", "a string or an array of objects"}
	wPrompt   = want{"one of a string or array", "a valid string or a valid list", "a string or an array"}
	wItems    = want{"one of a string or array of input items", "a valid string or a valid list", "a string or an array of items"}
	wChoice   = want{"one of a string or object", "a valid string or a valid dictionary", "a string or an object"}
	wThinking = want{"one of a boolean or string", "a valid boolean or a valid string", "true, false or a string"}
)

// problemKind is what is wrong with a value.
type problemKind int

const (
	missing    problemKind = iota // a required field is absent
	wrongType                     // the value is of another type
	emptyList                     // an array that needs an item has none
	notAllowed                    // a string none of those allowed
	tooSmall                      // a number under the least allowed
	tooLarge                      // a number over the most allowed
	custom                        // msg says it all
)

// problem is the first thing wrong with a request.
type problem struct {
	kind    problemKind
	at      where
	want    want     // wrongType
	got     jsonKind // wrongType
	value   string   // notAllowed, tooSmall, tooLarge: as sent
	allowed []string // notAllowed
	limit   string   // tooSmall, tooLarge
	integer bool     // tooSmall, tooLarge: the value is an integer
	msg     string   // custom
}

// code is the code OpenAI gives the problem, if any.
func (p *problem) code() string {
	numeric := "decimal"
	if p.integer {
		numeric = "integer"
	}
	switch p.kind {
	case missing:
		return "missing_required_parameter"
	case wrongType:
		return "invalid_type"
	case emptyList:
		return "empty_array"
	case notAllowed:
		return "invalid_value"
	case tooSmall:
		return numeric + "_below_min_value"
	case tooLarge:
		return numeric + "_above_max_value"
	}
	return ""
}

// message writes p in the words of the API d.
func (p *problem) message(d dialect) string {
	if p.kind == custom {
		return p.msg
	}
	switch d {
	case dialectOpenAI:
		return p.openAIMessage()
	case dialectAnthropic:
		return p.anthropicMessage()
	}
	return p.plainMessage()
}

func (p *problem) openAIMessage() string {
	at := p.at.openAI()
	numeric := "decimal"
	if p.integer {
		numeric = "integer"
	}
	switch p.kind {
	case missing:
		return fmt.Sprintf("Missing required parameter: '%s'.", at)
	case wrongType:
		return fmt.Sprintf("Invalid type for '%s': expected %s, but got %s instead.", at, p.want.openAI, openAIGot[p.got])
	case emptyList:
		return fmt.Sprintf("Invalid '%s': empty array. Expected an array with minimum length 1, but got an empty array instead.", at)
	case notAllowed:
		return fmt.Sprintf("Invalid value: '%s'. Supported values are: %s.", p.value, listWords(p.allowed, "'", "and", true))
	case tooSmall:
		return fmt.Sprintf("Invalid '%s': %s below minimum value. Expected a value >= %s, but got %s instead.", at, numeric, p.limit, p.value)
	default:
		return fmt.Sprintf("Invalid '%s': %s above maximum value. Expected a value <= %s, but got %s instead.", at, numeric, p.limit, p.value)
	}
}

func (p *problem) anthropicMessage() string {
	at := p.at.dotted()
	switch p.kind {
	case missing:
		return at + ": Field required"
	case wrongType:
		msg := at + ": Input should be " + p.want.anthropic
		if p.want == wInteger && p.got == kDecimal {
			msg += ", got a number with a fractional part"
		}
		return msg
	case emptyList:
		if at == "messages" {
			return "messages: at least one message is required"
		}
		return at + ": List should have at least 1 item after validation, not 0"
	case notAllowed:
		return at + ": Input should be " + listWords(p.allowed, "'", "or", false)
	case tooSmall:
		return at + ": Input should be greater than or equal to " + p.limit
	default:
		return at + ": Input should be less than or equal to " + p.limit
	}
}

func (p *problem) plainMessage() string {
	at := p.at.openAI()
	switch p.kind {
	case missing:
		return at + " is required"
	case wrongType:
		return fmt.Sprintf("%s: expected %s, got %s", at, p.want.plain, plainGot[p.got])
	case emptyList:
		return at + ": expected at least one item, got an empty array"
	case notAllowed:
		return fmt.Sprintf("%s: %q is not supported; use %s", at, p.value, listWords(p.allowed, `"`, "or", false))
	case tooSmall:
		return fmt.Sprintf("%s: must be at least %s, got %s", at, p.limit, p.value)
	default:
		return fmt.Sprintf("%s: must be at most %s, got %s", at, p.limit, p.value)
	}
}

// listWords quotes values with quote and joins them as a sentence does:
// 'a', 'b' or 'c' (with a serial comma when serial, as OpenAI writes).
func listWords(values []string, quote, and string, serial bool) string {
	q := make([]string, len(values))
	for i, v := range values {
		q[i] = quote + v + quote
	}
	if len(q) < 2 {
		return strings.Join(q, "")
	}
	sep := " "
	if serial && len(q) > 2 {
		sep = ", "
	}
	return strings.Join(q[:len(q)-1], ", ") + sep + and + " " + q[len(q)-1]
}

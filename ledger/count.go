package ledger

import (
	"bytes"
	"strconv"
)

// Counter counts the tokens of an answer as it streams through: what its
// last usage or timings block says (llama-server's "prompt_n" and
// "predicted_n", OpenAI's "prompt_tokens" and "completion_tokens", the
// Responses and Anthropic APIs' "input_tokens" and "output_tokens"), or
// else, for tokens out, one per server-sent event chunk. The zero value is
// ready to use.
type Counter struct {
	chunks int
	tail   []byte
}

var (
	dataPrefix = []byte("data: {")
	outKeys    = [][]byte{[]byte(`"predicted_n":`), []byte(`"completion_tokens":`), []byte(`"output_tokens":`)}
	inKeys     = [][]byte{[]byte(`"prompt_n":`), []byte(`"prompt_tokens":`), []byte(`"input_tokens":`)}
)

// Write takes the next bytes of the answer; it never fails.
func (c *Counter) Write(p []byte) (int, error) {
	joined := append(c.tail, p...)
	c.chunks += bytes.Count(joined, dataPrefix) - bytes.Count(c.tail, dataPrefix)
	if len(joined) > 4096 {
		joined = joined[len(joined)-4096:]
	}
	c.tail = append(c.tail[:0], joined...)
	return len(p), nil
}

// Out is the number of tokens generated.
func (c *Counter) Out() int {
	if n, ok := last(c.tail, outKeys); ok {
		return n
	}
	if c.chunks > 2 { // the role chunk and the final chunk carry no token
		return c.chunks - 2
	}
	return 0
}

// Tail is the answer's last bytes (4 KB at most), where its usage and
// timings are.
func (c *Counter) Tail() []byte { return c.tail }

// In is the number of prompt tokens, when the answer says (0 otherwise).
func (c *Counter) In() int {
	n, _ := last(c.tail, inKeys)
	return n
}

// last is the value of whichever key occurs last in b.
func last(b []byte, keys [][]byte) (int, bool) {
	at, n := -1, 0
	for _, key := range keys {
		i := bytes.LastIndex(b, key)
		if i <= at {
			continue
		}
		rest := b[i+len(key):]
		end := bytes.IndexAny(rest, ",}")
		if end <= 0 {
			continue
		}
		if v, err := strconv.Atoi(string(bytes.TrimSpace(rest[:end]))); err == nil && v >= 0 {
			at, n = i, v
		}
	}
	return n, at >= 0
}

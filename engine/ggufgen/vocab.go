package ggufgen

import "fmt"

// spaceMark is SentencePiece's word-boundary marker, which stands for a space.
const spaceMark = "▁"

// commonPieces open the ordinary part of the vocabulary, most likely first,
// so that everyday English text tokenizes without falling back to bytes.
var commonPieces = []string{
	spaceMark, "▁the", "▁a", "▁and", "▁to", "▁was", "▁he", "▁she", "▁it",
	"▁in", "▁of", "▁is", "▁that", "▁with", "▁for", "▁on", "▁you", "▁I",
	"▁The", "▁hello", "▁world", "▁Once", "▁upon", "▁time", "▁there",
	"the", "he", "in", "er", "an", "re", "on", "at", "en", "nd", "ed", "ing",
	"ll", "lo", "or", "ou", "it", "is", "es", "ar", "st",
}

// singleChars are the one-character pieces that follow commonPieces.
const singleChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?'\"-:;()"

// vocab returns a SentencePiece-style vocabulary of n tokens (n >= MinVocab):
// <unk>, <s>, </s>, the byte tokens <0x00>..<0xFF>, the user-defined pieces
// given, then ordinary pieces with falling scores.
func vocab(n int, user []string) (tokens []string, scores []float32, types []int32) {
	tokens = make([]string, 0, n)
	scores = make([]float32, 0, n)
	types = make([]int32, 0, n)
	add := func(tok string, score float32, typ int32) {
		tokens = append(tokens, tok)
		scores = append(scores, score)
		types = append(types, typ)
	}
	add("<unk>", 0, tokenUnknown)
	add("<s>", 0, tokenControl)
	add("</s>", 0, tokenControl)
	for b := range 256 {
		add(fmt.Sprintf("<0x%02X>", b), 0, tokenByte)
	}
	for _, p := range user {
		if len(tokens) < n {
			add(p, 0, tokenUserDefined)
		}
	}
	next := pieces(user)
	for i := 0; len(tokens) < n; i++ {
		add(next(), -float32(i), tokenNormal)
	}
	return tokens, scores, types
}

// pieces returns a generator of distinct ordinary pieces, none of them in
// user: commonPieces, then
// singleChars, then every lowercase letter string of growing length, each
// with and without a leading spaceMark.
func pieces(user []string) func() string {
	seen := make(map[string]bool)
	for _, p := range user {
		seen[p] = true // already in the vocabulary
	}
	var queue []string
	queue = append(queue, commonPieces...)
	for _, c := range singleChars {
		queue = append(queue, string(c))
	}
	var combo []byte // the last lowercase string queued, as letter indices
	return func() string {
		for {
			for len(queue) > 0 {
				p := queue[0]
				queue = queue[1:]
				if !seen[p] {
					seen[p] = true
					return p
				}
			}
			combo = nextCombo(combo)
			s := make([]byte, len(combo))
			for i, c := range combo {
				s[i] = 'a' + c
			}
			queue = append(queue, spaceMark+string(s), string(s))
		}
	}
}

// nextCombo steps through the strings over 26 letters, shortest first, like
// an odometer: [] -> [0], [25] -> [0 0], [0 25] -> [1 0].
func nextCombo(c []byte) []byte {
	for i := len(c) - 1; i >= 0; i-- {
		if c[i] < 25 {
			c[i]++
			return c
		}
		c[i] = 0
	}
	return append(c, 0)
}

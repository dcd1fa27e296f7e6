// Package hub fetches GGUF models from Hugging Face, or from any server with
// its layout (HF_ENDPOINT): it resolves a reference to files, downloads them
// with resume, and checks them against the sha256 the hub publishes.
package hub

import (
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"strconv"
	"strings"
)

// DefaultEndpoint is Hugging Face's; HF_ENDPOINT overrides it.
const DefaultEndpoint = "https://huggingface.co"

// DefaultQuant is the quantization a reference without one asks for.
const DefaultQuant = "Q4_K_M"

// Ref is a model on the hub: a repository and either a file in it or a
// quantization tag that picks one.
type Ref struct {
	Repo  string // OWNER/REPO
	File  string // a path in the repository; empty: pick by Quant
	Quant string // e.g. "Q4_K_M"; empty with no File: DefaultQuant
	Rev   string // branch, tag or commit; default "main"
}

// String is the reference in the form people write: hf.co/OWNER/REPO:QUANT,
// or OWNER/REPO/FILE.
func (r Ref) String() string {
	repo := r.Repo
	if r.Rev != "" && r.Rev != "main" {
		repo += "@" + r.Rev
	}
	if r.File != "" {
		return repo + "/" + r.File
	}
	q := r.Quant
	if q == "" {
		q = DefaultQuant
	}
	return "hf.co/" + repo + ":" + q
}

// LooksLikeRef says whether s is meant as a hub reference rather than a
// path or a library name: it names a host, or has the OWNER/REPO shape.
func LooksLikeRef(s string) bool {
	_, err := ParseRef(s)
	return err == nil
}

// ParseRef reads the forms Ollama and llama.cpp's -hf use:
//
//	hf.co/OWNER/REPO[:QUANT]     (also huggingface.co/…, https://…)
//	OWNER/REPO[:QUANT]
//	OWNER/REPO/PATH/TO/FILE.gguf
//
// and REPO@REV anywhere a repository is named.
func ParseRef(s string) (Ref, error) {
	in := s
	s = strings.TrimSpace(s)
	for _, p := range []string{"https://", "http://"} {
		s = strings.TrimPrefix(s, p)
	}
	for _, p := range []string{"hf.co/", "huggingface.co/"} {
		if strings.HasPrefix(strings.ToLower(s), p) {
			s = s[len(p):]
		}
	}
	bad := func(why string) (Ref, error) {
		return Ref{}, fmt.Errorf("%q is not a Hugging Face reference (%s): write OWNER/REPO:QUANT or OWNER/REPO/FILE.gguf", in, why)
	}
	parts := strings.Split(s, "/")
	if len(parts) < 2 || parts[0] == "" || parts[1] == "" {
		return bad("no OWNER/REPO")
	}
	var r Ref
	name, rest := parts[1], ""
	if len(parts) == 2 {
		name, r.Quant, _ = strings.Cut(name, ":")
	}
	name, r.Rev, _ = strings.Cut(name, "@")
	if strings.HasSuffix(strings.ToLower(name), ".gguf") && len(parts) == 2 {
		return bad("a file with no repository")
	}
	r.Repo = parts[0] + "/" + name
	if len(parts) > 2 {
		rest = strings.Join(parts[2:], "/")
		r.File = rest
		// hf.co/OWNER/REPO/resolve/main/FILE, as copied from a browser.
		for _, kind := range []string{"resolve/", "blob/"} {
			if after, ok := strings.CutPrefix(rest, kind); ok {
				rev, file, ok := strings.Cut(after, "/")
				if !ok {
					return bad("no file after " + kind)
				}
				r.Rev, r.File = rev, file
			}
		}
		if !strings.HasSuffix(strings.ToLower(r.File), ".gguf") {
			return bad("the file is not a .gguf")
		}
		if path.Clean(r.File) != r.File || !fs.ValidPath(r.File) {
			return bad("unclean file path")
		}
	}
	for _, part := range strings.Split(r.Repo, "/") {
		if !validName(part) {
			return bad("owner and repository names are letters, digits, '-', '_' and '.'")
		}
	}
	if r.Rev != "" && !validName(r.Rev) {
		return bad("a revision is a branch, tag or commit name")
	}
	if r.Rev == "" {
		r.Rev = "main"
	}
	return r, nil
}

func validName(s string) bool {
	if s == "" || strings.Contains(s, "..") || strings.HasPrefix(s, ".") || len(s) > 96 {
		return false // the hub allows none of these, and a path must not climb
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// QuantMatches says whether a GGUF file name is of the quantization tag,
// compared without case and as a whole word: "Q4_K_M" matches
// "Llama-3.2-1B-Instruct-Q4_K_M.gguf", not "…-IQ4_K_M.gguf", and "Q4_K"
// does not match it either.
func QuantMatches(file, tag string) bool {
	file, tag = strings.ToUpper(file), strings.ToUpper(tag)
	if tag == "" {
		return false
	}
	for i := 0; ; {
		j := strings.Index(file[i:], tag)
		if j < 0 {
			return false
		}
		j += i
		end := j + len(tag)
		if (j == 0 || !isWord(file[j-1])) && (end == len(file) || !isWord(file[end]) && file[end] != '_') {
			return true
		}
		i = j + 1
	}
}

func isWord(b byte) bool {
	return b >= 'A' && b <= 'Z' || b >= 'a' && b <= 'z' || b >= '0' && b <= '9'
}

// splitShard matches the shards of a split GGUF: NAME-00001-of-00003.gguf.
var splitShard = regexp.MustCompile(`(?i)^(.*)-(\d{5})-of-(\d{5})\.gguf$`)

// Shard reads a split GGUF's file name: NAME-00002-of-00003.gguf is shard 2
// of 3 of NAME. ok is false for a file that is not a shard.
func Shard(file string) (name string, index, count int, ok bool) {
	m := splitShard.FindStringSubmatch(file)
	if m == nil {
		return "", 0, 0, false
	}
	index, _ = strconv.Atoi(m[2])
	count, _ = strconv.Atoi(m[3])
	return m[1], index, count, index >= 1 && count >= 1 && index <= count
}

// ShardName is the file name of shard index of count of name.
func ShardName(name string, index, count int) string {
	return fmt.Sprintf("%s-%05d-of-%05d.gguf", name, index, count)
}

// Command tiny-llama writes a tiny random-weight llama GGUF: a model for
// smoke tests where no real model is at hand. Its output is gibberish.
//
//	go run ./engine/ggufgen/cmd/tiny-llama OUT.gguf
package main

import (
	"fmt"
	"os"

	"github.com/potluck-gpu/potluck/engine/ggufgen"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: tiny-llama OUT.gguf")
		os.Exit(2)
	}
	if err := ggufgen.WriteFile(os.Args[1], ggufgen.DefaultTinyLlama()); err != nil {
		fmt.Fprintln(os.Stderr, "tiny-llama:", err)
		os.Exit(1)
	}
}

// Command tiny-llama writes a tiny random-weight llama GGUF: a model for
// smoke tests where no real model is at hand. Its output is gibberish.
// With -tools it writes ggufgen.ToolLlama instead, which calls a tool
// wherever a request offers one.
//
//	go run ./engine/ggufgen/cmd/tiny-llama [-tools] OUT.gguf
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/potluck-gpu/potluck/engine/ggufgen"
)

func main() {
	tools := flag.Bool("tools", false, "write the tool-calling model")
	flag.Usage = func() { fmt.Fprintln(os.Stderr, "usage: tiny-llama [-tools] OUT.gguf") }
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	m := ggufgen.DefaultTinyLlama()
	if *tools {
		m = ggufgen.ToolLlama()
	}
	if err := ggufgen.WriteFile(flag.Arg(0), m); err != nil {
		fmt.Fprintln(os.Stderr, "tiny-llama:", err)
		os.Exit(1)
	}
}

// Command llama-releases serves llama.cpp builds made by
// scripts/llama-build.sh as the official release archives, on loopback, for
// trying Potluck's provisioning by hand (under Wine, for one):
//
//	go run ./runtimes/runtimestest/cmd/llama-releases DIR...
//
// where each DIR is a build folder that scripts/llama-build.sh printed. It
// prints the URL to give as --releases or POTLUCK_LLAMA_RELEASES, and serves
// until interrupted.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"

	"github.com/potluck-gpu/potluck/runtimes/runtimestest"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: llama-releases BUILD_DIR... (the folders scripts/llama-build.sh prints)")
		os.Exit(2)
	}
	srv := runtimestest.Start()
	defer srv.Close()
	for _, dir := range os.Args[1:] {
		// .../llama-build/<version>-<commit>/<os>/bin
		goos := filepath.Base(filepath.Dir(dir))
		version, _, _ := strings.Cut(filepath.Base(filepath.Dir(filepath.Dir(dir))), "-")
		names, err := srv.AddBuild(version, goos, dir)
		if err != nil {
			fmt.Fprintln(os.Stderr, "llama-releases:", err)
			os.Exit(1)
		}
		fmt.Fprintf(os.Stderr, "serving %s\n", strings.Join(names, ", "))
	}
	fmt.Println(srv.URL)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt)
	<-sig
}

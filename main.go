// Command potluck pools the GPUs and memory of several machines to run LLMs.
//
//	potluck                 the tray app (a headless node where there is no desktop)
//	potluck run             a headless node
//	potluck help            the other commands
//
// main.go wires the command line to the node; commands.go lists the
// commands and writes their help, and flags.go is the table of flags and
// their environment variables.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/potluck-gpu/potluck/app"
	"github.com/potluck-gpu/potluck/hw"
	"github.com/potluck-gpu/potluck/netmesh"
	"github.com/potluck-gpu/potluck/sandbox"
	"github.com/potluck-gpu/potluck/tray"
)

func main() {
	// Started as the sandbox's launcher, the program becomes a confined
	// llama.cpp child here and goes no further.
	sandbox.LaunchOrExit()
	launcher, _ = os.Executable()
	attachConsole()
	os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
}

// launcher is this program, when main started it: it starts llama.cpp's
// children in the sandbox. Tests that call realMain leave it empty.
var launcher string

func realMain(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch {
	case len(args) == 1 && (args[0] == "--version" || args[0] == "-version"):
		args = []string{"version"}
	case len(args) > 0 && isHelpFlag(args[0]):
		args = append([]string{"help"}, args[1:]...)
	}
	name := ""
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, args = args[0], args[1:]
	}
	var err error
	if c, ok := lookup(name); ok {
		err = c.run(ctx, args, stdout, stderr)
	} else if name == "" {
		// No command: the tray app, or a headless node without a desktop.
		err = cmdRun(ctx, args, stdout, stderr, true)
	} else {
		fmt.Fprintf(stderr, "potluck: unknown command %q\nrun 'potluck --help' for usage\n", name)
		return 2
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "potluck: %v\n", err)
		var ue usageError
		if errors.As(err, &ue) {
			hint := "potluck --help"
			if name != "" && name != "help" {
				hint = "potluck " + name + " --help"
			}
			fmt.Fprintf(stderr, "run '%s' for usage\n", hint)
			return 2
		}
		return 1
	}
	return 0
}

// usageError is a mistake on the command line (exit status 2).
type usageError struct{ error }

func defaultConfig() app.Config {
	cfg := app.DefaultConfig()
	cfg.Llama.EnvDir = os.Getenv("POTLUCK_LLAMA_DIR")
	cfg.Llama.ProvisionDir = env("POTLUCK_LLAMA_CACHE", cfg.Llama.ProvisionDir)
	cfg.Llama.PathEnv = os.Getenv("PATH")
	cfg.HFEndpoint = os.Getenv("HF_ENDPOINT")
	cfg.HFToken = os.Getenv("HF_TOKEN")
	if exe, err := os.Executable(); err == nil {
		cfg.Llama.ExeDir = filepath.Dir(exe)
	}
	cfg.Engine.Launcher = launcher
	return cfg
}

func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, usageError{fmt.Errorf("--log-level %q: want debug, info, warn or error", level)}
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer, desktop bool) error {
	cfg := defaultConfig()
	var level string
	fs := flag.NewFlagSet("potluck run", flag.ContinueOnError)
	var (
		modelsDirs []string
		bad        envErrors
	)
	bindSettings(fs, nodeSettings(&cfg, &level, &modelsDirs), &bad)
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	if err := bad.err(); err != nil {
		return err
	}
	cfg.ModelRoots = modelRoots(cfg.DataDir, modelsDirs)
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))}
	}
	log, err := newLogger(stderr, level)
	if err != nil {
		return err
	}
	warnSecretFlags(fs, log)
	// libp2p is chatty: only its warnings, unless POTLUCK_P2P_LOGLEVEL asks for more.
	p2pLevel := slog.LevelWarn
	if cfg.P2PLogLevel != "" {
		if err := p2pLevel.UnmarshalText([]byte(cfg.P2PLogLevel)); err != nil {
			return usageError{fmt.Errorf("POTLUCK_P2P_LOGLEVEL %q: want debug, info, warn or error", cfg.P2PLogLevel)}
		}
	}
	netmesh.RouteLibp2pLogs(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: p2pLevel}).WithAttrs([]slog.Attr{slog.String("part", "libp2p")}))
	desktop = desktop && tray.CanShow(os.Getenv)
	if desktop {
		if shown, err := tray.SignalRunning(cfg.DataDir); err == nil && shown {
			log.Info("potluck is already running: opened its dashboard")
			return nil
		}
	}
	node, err := app.NewNode(cfg, log)
	if err != nil {
		return err
	}
	if desktop {
		return runTray(ctx, node, cfg, log)
	}
	go func() {
		upCtx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if addr, err := node.Up(upCtx); err == nil {
			log.Info("potluck is running", "api", "http://"+addr+"/v1", "version", app.Version)
		}
	}()
	return node.Run(ctx)
}

func cmdHW(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("potluck hw", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print the hardware report as JSON")
	var share string
	bindSettings(fs, []setting{{"share-memory", "POTLUCK_SHARE_MEMORY", "", "cap on what to offer, a `SIZE` such as 12GiB", text{&share}}}, nil)
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	policy := hw.DefaultOfferPolicy()
	if share != "" {
		limit, err := hw.ParseSize(share)
		if err != nil {
			return usageError{fmt.Errorf("--share-memory: %w", err)}
		}
		policy.Cap = limit
	}
	r, err := hw.Probe(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	return hw.WriteTable(stdout, r, policy.Offer(r))
}

// runTray runs the node in the background and the tray app on this (the
// main) goroutine; whichever ends first ends the other.
func runTray(ctx context.Context, node *app.Node, cfg app.Config, log *slog.Logger) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	nodeErr := make(chan error, 1)
	go func() {
		err := node.Run(ctx)
		cancel() // a node that stops takes the tray down
		nodeErr <- err
	}()
	err := tray.Run(ctx, node, tray.Options{DataDir: cfg.DataDir, Log: log.With("part", "tray"), Getenv: os.Getenv, Version: app.Version})
	cancel()
	if nerr := <-nodeErr; nerr != nil {
		return nerr
	}
	if errors.Is(err, tray.ErrRunning) {
		return nil
	}
	return err
}

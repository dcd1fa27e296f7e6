// Command potluck pools the GPUs and memory of several machines to run LLMs.
//
//	potluck                 the tray app (headless node until the tray lands)
//	potluck run             a headless node
//	potluck engine status   which llama.cpp is used
//	potluck engine install  provision llama.cpp
//	potluck version
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
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/potluck-gpu/potluck/app"
	"github.com/potluck-gpu/potluck/engine"
	"github.com/potluck-gpu/potluck/hw"
	"github.com/potluck-gpu/potluck/ledger"
	"github.com/potluck-gpu/potluck/netmesh"
	"github.com/potluck-gpu/potluck/nodestate"
	"github.com/potluck-gpu/potluck/sandbox"
	"github.com/potluck-gpu/potluck/tray"
)

const usage = `Potluck pools the GPUs and memory of your machines to run LLMs.

Usage:
  potluck [run flags]         start a node (the tray app where a desktop is available)
  potluck run [flags]         start a headless node
  potluck engine status       show which llama.cpp binaries are used
  potluck engine install      provision llama.cpp (official release archives, or Debian's packages)
  potluck hw [--json]         what this machine has and would offer
  potluck token new           print a new invite token (a new network this computer owns)
  potluck models              the models on this machine (Potluck's, Ollama's, LM Studio's, Hugging Face's)
  potluck pull REF            get a model from peers or Hugging Face: OWNER/REPO:QUANT or OWNER/REPO/FILE.gguf
  potluck plan [--model M]    how the running node splits a model over the pool
  potluck members             the members of the running node's network
  potluck members remove WHO  remove a member (owner only): the others move to a new token
  potluck usage               what this computer gave to and used from each peer (tokens)
  potluck version             print the version (also --version)

Run "potluck run -h" for the node's flags.
`

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
	cmd := ""
	if len(args) == 1 && (args[0] == "--version" || args[0] == "-version") {
		args = nil
		cmd = "version"
	}
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "":
		err = cmdRun(ctx, args, stderr, true)
	case "run":
		err = cmdRun(ctx, args, stderr, false)
	case "engine":
		err = cmdEngine(ctx, args, stdout, stderr)
	case "hw":
		err = cmdHW(ctx, args, stdout, stderr)
	case "token":
		err = cmdToken(args, stdout, stderr)
	case "plan":
		err = cmdPlan(ctx, args, stdout, stderr)
	case "models":
		err = cmdModels(args, stdout, stderr)
	case "pull":
		err = cmdPull(ctx, args, stdout, stderr)
	case "members":
		err = cmdMembers(ctx, args, stdout, stderr)
	case "usage":
		err = cmdUsage(ctx, args, stdout, stderr)
	case "version":
		fmt.Fprintf(stdout, "potluck %s\n", app.Version)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "potluck: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "potluck: %v\n", err)
		var ue usageError
		if errors.As(err, &ue) {
			return 2
		}
		return 1
	}
	return 0
}

// usageError is a mistake on the command line (exit status 2).
type usageError struct{ error }

// nodeFlags binds the node's flags, with environment defaults, to cfg and
// the other places named.
func nodeFlags(fs *flag.FlagSet, cfg *app.Config, logLevel *string, modelsDirs *[]string, bad *envErrors) {
	fs.StringVar(&cfg.DataDir, "data-dir", env("POTLUCK_DATA_DIR", cfg.DataDir), "settings, identity and logs `dir` [POTLUCK_DATA_DIR]")
	fs.StringVar(&cfg.Name, "name", env("POTLUCK_NAME", cfg.Name), "display name of this node [POTLUCK_NAME]")
	fs.StringVar(&cfg.API, "api", env("POTLUCK_API", cfg.API), "API listen `address` [POTLUCK_API]")
	fs.StringVar(&cfg.APIKey, "api-key", env("POTLUCK_API_KEY", ""), "API key clients must send as a Bearer token; required off loopback (prefer --api-key-file) [POTLUCK_API_KEY]")
	secretFileFlag(fs, &cfg.APIKey, "api-key-file", "read the API key from `file` (mode 0600)")
	fs.StringVar(&cfg.AdminKey, "admin-key", env("POTLUCK_ADMIN_KEY", ""), "key that lets remote clients use the admin endpoints (prefer --admin-key-file) [POTLUCK_ADMIN_KEY]")
	secretFileFlag(fs, &cfg.AdminKey, "admin-key-file", "read the admin key from `file` (mode 0600)")
	fs.StringVar(&cfg.CORSOrigin, "cors-origin", env("POTLUCK_CORS_ORIGIN", ""), "let a web page from this `origin` use /v1 and read status [POTLUCK_CORS_ORIGIN]")
	listFlag(fs, &cfg.AllowedHosts, "allow-host", "POTLUCK_ALLOW_HOSTS", "more host names the API answers to, comma-separated (loopback and the --api host always)")
	fs.StringVar(&cfg.OllamaAPI, "ollama-api", env("POTLUCK_OLLAMA_API", ""), "also serve an Ollama-compatible API on this `address`, e.g. 127.0.0.1:11434 (off by default: Ollama itself may be there) [POTLUCK_OLLAMA_API]")
	fs.StringVar(&cfg.Model, "model", env("POTLUCK_MODEL", ""), "the `model` to serve: a name from `potluck models`, a GGUF path, or a Hugging Face reference (OWNER/REPO:QUANT), pulled first [POTLUCK_MODEL]")
	modelsDirFlag(fs, modelsDirs)
	fs.BoolVar(&cfg.Embeddings, "embeddings", bad.bool("POTLUCK_EMBEDDINGS"), "serve /v1/embeddings from a chat model too (embedding and rerank models serve theirs anyway) [POTLUCK_EMBEDDINGS]")
	fs.IntVar(&cfg.CtxSize, "ctx-size", bad.int("POTLUCK_CTX_SIZE", cfg.CtxSize), "context size in tokens [POTLUCK_CTX_SIZE]")
	fs.IntVar(&cfg.Threads, "threads", bad.int("POTLUCK_THREADS", cfg.Threads), "CPU threads for llama.cpp; 0 = its default [POTLUCK_THREADS]")
	fs.StringVar(&cfg.Llama.Dir, "llama-dir", "", "`dir` holding llama-server and rpc-server (overrides the search)")
	engineFlags(fs, &cfg.Engine, bad)
	fs.StringVar(&cfg.Llama.ProvisionDir, "llama-cache", cfg.Llama.ProvisionDir, "`dir` of the llama.cpp builds Potluck provisions [POTLUCK_LLAMA_CACHE]")
	fs.BoolVar(&cfg.Engine.NoSandbox, "no-sandbox", bad.bool("POTLUCK_NO_SANDBOX"), "start llama.cpp's children unconfined, for troubleshooting only: what members send them then reaches a process that can read your files [POTLUCK_NO_SANDBOX]")
	fs.BoolVar(&cfg.Engine.NoFetch, "no-llama-fetch", bad.bool("POTLUCK_LLAMA_NO_FETCH"), "never fetch llama.cpp: use one installed by hand or provisioned before [POTLUCK_LLAMA_NO_FETCH]")
	fs.StringVar(logLevel, "log-level", env("POTLUCK_LOG_LEVEL", "info"), "debug, info, warn or error [POTLUCK_LOG_LEVEL]")

	fs.StringVar(&cfg.Token, "token", env("POTLUCK_P2P_TOKEN", ""), "invite `token` of the network to join; other users can read it in the process list, prefer --token-file [POTLUCK_P2P_TOKEN]")
	secretFileFlag(fs, &cfg.Token, "token-file", "read the invite token from `file` (mode 0600)")
	listFlag(fs, &cfg.Bootstrap, "bootstrap", "POTLUCK_P2P_BOOTSTRAP_PEERS", "peers to connect to first: full multiaddrs with /p2p/<id>, comma-separated")
	listFlag(fs, &cfg.P2PListen, "p2p-listen", "POTLUCK_P2P_LISTEN_MADDRS", "libp2p listen multiaddrs, comma-separated (default: TCP port 4101 on all interfaces; forward it on your router to be reachable)")
	fs.BoolVar(&cfg.NoDHT, "no-dht", bad.bool("POTLUCK_P2P_DISABLE_DHT"), "no DHT discovery: LAN (mDNS) and --bootstrap only [POTLUCK_P2P_DISABLE_DHT]")
	fs.BoolVar(&cfg.NoMDNS, "no-mdns", bad.bool("POTLUCK_P2P_DISABLE_MDNS"), "no LAN discovery [POTLUCK_P2P_DISABLE_MDNS]")
	fs.BoolVar(&cfg.NoTraversal, "no-traversal", bad.bool("POTLUCK_P2P_DISABLE_TRAVERSAL"), "no NAT traversal: no AutoNAT, no relaying for members, no hole punching [POTLUCK_P2P_DISABLE_TRAVERSAL]")
	fs.BoolVar(&cfg.NoPortMap, "no-port-map", bad.bool("POTLUCK_P2P_DISABLE_PORT_MAP"), "do not ask the router to forward the p2p port (UPnP, NAT-PMP) [POTLUCK_P2P_DISABLE_PORT_MAP]")
	fs.BoolVar(&cfg.P2PLimits, "p2p-limits", bad.bool("POTLUCK_P2P_ENABLE_LIMITS"), "enforce libp2p connection and resource limits [POTLUCK_P2P_ENABLE_LIMITS]")
	cfg.P2PLogLevel = env("POTLUCK_P2P_LOGLEVEL", "")
	if v := env("POTLUCK_P2P_HEARTBEAT", ""); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			bad.add("POTLUCK_P2P_HEARTBEAT", v, "a duration such as 5s")
		}
		cfg.Heartbeat = d
	}
	fs.Func("share", "share this machine: off, worker (a shard of a split model) or server (whole requests) [POTLUCK_SHARE]", func(v string) error {
		m, ok := nodestate.ParseShareMode(v)
		if !ok {
			return fmt.Errorf("want off, worker or server")
		}
		cfg.Share = m
		return nil
	})
	if v := env("POTLUCK_SHARE", ""); v != "" {
		m, ok := nodestate.ParseShareMode(v)
		if !ok {
			bad.add("POTLUCK_SHARE", v, "off, worker or server")
		}
		cfg.Share = m
	}
	fs.Func("share-memory", "cap on the memory offered, e.g. 12GiB (default: free VRAM and half the free RAM) [POTLUCK_SHARE_MEMORY]", func(v string) error {
		n, err := hw.ParseSize(v)
		cfg.ShareMemory = n
		return err
	})
	if v := env("POTLUCK_SHARE_MEMORY", ""); v != "" {
		n, err := hw.ParseSize(v)
		if err != nil {
			bad.add("POTLUCK_SHARE_MEMORY", v, "a size such as 12GiB or 8000MB")
		}
		cfg.ShareMemory = n
	}
	fs.Func("share-limit", "tokens a day this node's model serves each peer, e.g. 500k (default: no limit; this machine's own requests are never limited) [POTLUCK_SHARE_LIMIT]", func(v string) error {
		n, err := ledger.ParseTokens(v)
		cfg.ShareLimit = n
		return err
	})
	if v := env("POTLUCK_SHARE_LIMIT", ""); v != "" {
		n, err := ledger.ParseTokens(v)
		if err != nil {
			bad.add("POTLUCK_SHARE_LIMIT", v, "a number of tokens such as 500k, 2M or 20000")
		}
		cfg.ShareLimit = n
	}
	fs.Func("lend-to", "the members whose models a shard worker splits onto this computer: all, or member names and peer ids separated by commas (default: all; a name means the member first seen with it) [POTLUCK_LEND_TO]", func(v string) error {
		if _, err := app.ParseLendTo(v); err != nil {
			return err
		}
		cfg.LendTo = v
		return nil
	})
	if v := env("POTLUCK_LEND_TO", ""); v != "" {
		if _, err := app.ParseLendTo(v); err != nil {
			bad.add("POTLUCK_LEND_TO", v, "all, or member names and peer ids separated by commas")
		}
		cfg.LendTo = v
	}
	fs.Func("reserve-memory", "system memory the model this node serves leaves to everything else, e.g. 8GiB (default 4GiB; --share-memory caps only what is lent) [POTLUCK_RESERVE_MEMORY]", func(v string) error {
		n, err := hw.ParseSize(v)
		cfg.ReserveMemory = n
		return err
	})
	if v := env("POTLUCK_RESERVE_MEMORY", ""); v != "" {
		n, err := hw.ParseSize(v)
		if err != nil {
			bad.add("POTLUCK_RESERVE_MEMORY", v, "a size such as 8GiB")
		}
		cfg.ReserveMemory = n
	}
	listFlag(fs, &cfg.Devices, "device", "POTLUCK_DEVICE", "use only these of llama.cpp's devices, e.g. CUDA0,CPU (see `potluck engine status`), to serve and to lend; default: every device that makes a plan faster")
	fs.Func("split", "how a model is split: fit (the fastest plan that holds it) or all (every device) [POTLUCK_SPLIT]", func(v string) error {
		m, err := engine.ParseSplitMode(v)
		cfg.Split = m
		return err
	})
	if v := env("POTLUCK_SPLIT", ""); v != "" {
		m, err := engine.ParseSplitMode(v)
		if err != nil {
			bad.add("POTLUCK_SPLIT", v, "fit or all")
		} else {
			cfg.Split = m
		}
	}
}

// secretFileFlag binds a flag that reads a secret from a file, which only
// its owner may read.
func secretFileFlag(fs *flag.FlagSet, dst *string, name, usage string) {
	fs.Func(name, usage, func(path string) error {
		v, err := readSecretFile(path)
		*dst = v
		return err
	})
}

// readSecretFile reads a key or token from path. It refuses a file that
// other users can read (on systems with Unix permissions) or that is empty.
func readSecretFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	if fi.IsDir() {
		return "", fmt.Errorf("%s is a directory", path)
	}
	if perm := fi.Mode().Perm(); runtime.GOOS != "windows" && perm&0o077 != 0 {
		return "", fmt.Errorf("%s can be read by other users (mode %04o): run `chmod 600 %s`", path, perm, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, 1<<20))
	if err != nil {
		return "", err
	}
	v := strings.TrimSpace(string(data))
	if v == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return v, nil
}

// warnSecretFlags warns about secrets given on the command line, where
// every user of the machine can read them (ps, /proc).
func warnSecretFlags(fs *flag.FlagSet, log *slog.Logger) {
	instead := map[string]string{
		"token":     "--token-file FILE or POTLUCK_P2P_TOKEN",
		"api-key":   "--api-key-file FILE or POTLUCK_API_KEY",
		"admin-key": "--admin-key-file FILE or POTLUCK_ADMIN_KEY",
	}
	fs.Visit(func(f *flag.Flag) {
		if alt, ok := instead[f.Name]; ok {
			log.Warn("--"+f.Name+" on the command line can be read by other users of this machine in the process list; use "+alt+" instead", "flag", f.Name)
		}
	})
}

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

func cmdRun(ctx context.Context, args []string, stderr io.Writer, desktop bool) error {
	cfg := defaultConfig()
	var level string
	fs := flag.NewFlagSet("potluck run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		modelsDirs []string
		bad        envErrors
	)
	nodeFlags(fs, &cfg, &level, &modelsDirs, &bad)
	if err := fs.Parse(args); err != nil {
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
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print the hardware report as JSON")
	share := fs.String("share-memory", env("POTLUCK_SHARE_MEMORY", ""), "cap on what to offer, e.g. 12GiB [POTLUCK_SHARE_MEMORY]")
	if err := fs.Parse(args); err != nil {
		return err
	}
	policy := hw.DefaultOfferPolicy()
	if *share != "" {
		limit, err := hw.ParseSize(*share)
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

package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/potluck-gpu/potluck/app"
	"github.com/potluck-gpu/potluck/engine"
	"github.com/potluck-gpu/potluck/hw"
	"github.com/potluck-gpu/potluck/ledger"
	"github.com/potluck-gpu/potluck/nodestate"
	"github.com/potluck-gpu/potluck/runtimes"
	"github.com/potluck-gpu/potluck/sched"
	"github.com/potluck-gpu/potluck/speculate"
	"github.com/potluck-gpu/potluck/worker"
)

// A setting is one row of the command line's table: a flag, the POTLUCK_
// variable read when the flag is not given, the default when neither is,
// the flag's help, and where the value goes. A flag wins over its variable
// and the variable over the default; a variable that cannot be read stops
// the command rather than being ignored.
type setting struct {
	flag  string // "" for a variable with no flag
	env   string // "" for a flag with no variable
	def   string // the value when neither is given, as text
	usage string // the flag's help; a `WORD` in backquotes names its argument
	to    dest   // where the value goes
}

// A dest is where a setting's value goes. bind puts the variable's value,
// or the default, in place and defines the flag that overrides it.
type dest interface {
	bind(fs *flag.FlagSet, s setting, bad *envErrors)
}

// help is the flag's usage, with its variable named at the end.
func (s setting) help() string {
	switch {
	case s.env == "":
		return s.usage
	case isPaths(s.to):
		return s.usage + " [" + s.env + ", a path list]"
	}
	return s.usage + " [" + s.env + "]"
}

func isPaths(d dest) bool { _, ok := d.(paths); return ok }

// bindSettings defines the flags of table on fs, each holding its
// variable's value or its default; bad collects the variables that cannot
// be read, in the table's order.
func bindSettings(fs *flag.FlagSet, table []setting, bad *envErrors) {
	for _, s := range table {
		s.to.bind(fs, s, bad)
	}
}

// nodeSettings is the table of the node's flags and variables: those of
// `potluck run`, which the tray app takes too.
func nodeSettings(cfg *app.Config, logLevel *string, modelsDirs *[]string) []setting {
	return slices.Concat([]setting{
		{"data-dir", "POTLUCK_DATA_DIR", cfg.DataDir, "settings, identity and logs `DIR`", text{&cfg.DataDir}},
		{"name", "POTLUCK_NAME", cfg.Name, "display `NAME` of this node", text{&cfg.Name}},
		{"api", "POTLUCK_API", cfg.API, "`ADDR` the API listens on, host:port", text{&cfg.API}},
		{"api-key", "POTLUCK_API_KEY", "", "`KEY` clients must send as a Bearer token; required off loopback (prefer --api-key-file)", text{&cfg.APIKey}},
		{"api-key-file", "", "", "read the API key from `FILE` (mode 0600)", secretFile{&cfg.APIKey}},
		{"admin-key", "POTLUCK_ADMIN_KEY", "", "`KEY` that lets remote clients use the admin endpoints (prefer --admin-key-file)", text{&cfg.AdminKey}},
		{"admin-key-file", "", "", "read the admin key from `FILE` (mode 0600)", secretFile{&cfg.AdminKey}},
		{"cors-origin", "POTLUCK_CORS_ORIGIN", "", "let a web page from this `ORIGIN` use /v1 and read status", text{&cfg.CORSOrigin}},
		{"allow-host", "POTLUCK_ALLOW_HOSTS", "", "more `HOSTS` the API answers to, names separated by commas (loopback and the --api host always)", list{&cfg.AllowedHosts}},
		{"ollama-api", "POTLUCK_OLLAMA_API", "", "also serve an Ollama-compatible API on this `ADDR`, e.g. 127.0.0.1:11434 (off by default: Ollama itself may be there)", text{&cfg.OllamaAPI}},
		{"model", "POTLUCK_MODEL", "", "the `MODEL` to serve: a name from 'potluck models', a GGUF path, or a Hugging Face reference (OWNER/REPO:QUANT), pulled first", text{&cfg.Model}},
		modelsDirsSetting(modelsDirs),
		{"embeddings", "POTLUCK_EMBEDDINGS", "", "serve /v1/embeddings from a chat model too (embedding and rerank models serve theirs anyway)", on{&cfg.Embeddings}},
		{"draft", "POTLUCK_DRAFT", "", "draft `MODEL` for speculative decoding: auto (the library's smallest model of the same tokenizer, for a split over machines or where it is predicted to help; else, for a split over machines, ngram), none, ngram (guesses from the text so far, no draft model), or a name from 'potluck models' (default: the choice made in the tray, else auto)", parsed{"auto, none, ngram or a model's name", func(v string) error {
			cfg.Draft = v
			return speculate.Check(v)
		}}},
		{"draft-max", "POTLUCK_DRAFT_MAX", "0", "draft at most `N` tokens at a time; 0 = llama.cpp's default (3)", count{&cfg.DraftMax}},
		{"draft-min", "POTLUCK_DRAFT_MIN", "0", "draft at least `N` tokens at a time; 0 = llama.cpp's default (0)", count{&cfg.DraftMin}},
		{"ctx-size", "POTLUCK_CTX_SIZE", strconv.Itoa(cfg.CtxSize), "context size: `N` tokens", count{&cfg.CtxSize}},
		{"threads", "POTLUCK_THREADS", strconv.Itoa(cfg.Threads), "`N` CPU threads for llama.cpp; 0 = its default", count{&cfg.Threads}},
		{"llama-dir", "", "", "`DIR` holding llama-server and rpc-server (overrides the search)", text{&cfg.Llama.Dir}},
	}, engineSettings(&cfg.Engine), []setting{
		{"llama-cache", "POTLUCK_LLAMA_CACHE", cfg.Llama.ProvisionDir, "`DIR` of the llama.cpp builds Potluck provisions", text{&cfg.Llama.ProvisionDir}},
		{"no-sandbox", "POTLUCK_NO_SANDBOX", "", "start llama.cpp's children unconfined, for troubleshooting only: what members send them then reaches a process that can read your files", on{&cfg.Engine.NoSandbox}},
		{"no-llama-fetch", "POTLUCK_LLAMA_NO_FETCH", "", "never fetch llama.cpp: use one installed by hand or provisioned before", on{&cfg.Engine.NoFetch}},
		{"log-level", "POTLUCK_LOG_LEVEL", "info", "`LEVEL` of the log: debug, info, warn or error", text{logLevel}},

		{"token", "POTLUCK_P2P_TOKEN", "", "invite `TOKEN` of the network to join; other users can read it in the process list, prefer --token-file", text{&cfg.Token}},
		{"token-file", "", "", "read the invite token from `FILE` (mode 0600)", secretFile{&cfg.Token}},
		{"bootstrap", "POTLUCK_P2P_BOOTSTRAP_PEERS", "", "`MADDRS` of peers to connect to first: full multiaddrs with /p2p/<id>, comma-separated", list{&cfg.Bootstrap}},
		{"p2p-listen", "POTLUCK_P2P_LISTEN_MADDRS", "", "libp2p listen `MADDRS`, comma-separated (default: TCP port 4101 on all interfaces; forward it on your router to be reachable)", list{&cfg.P2PListen}},
		{"no-dht", "POTLUCK_P2P_DISABLE_DHT", "", "no DHT discovery: LAN (mDNS) and --bootstrap only", on{&cfg.NoDHT}},
		{"no-mdns", "POTLUCK_P2P_DISABLE_MDNS", "", "no LAN discovery", on{&cfg.NoMDNS}},
		{"no-traversal", "POTLUCK_P2P_DISABLE_TRAVERSAL", "", "no NAT traversal: no AutoNAT, no relaying for members, no hole punching", on{&cfg.NoTraversal}},
		{"no-port-map", "POTLUCK_P2P_DISABLE_PORT_MAP", "", "do not ask the router to forward the p2p port (UPnP, NAT-PMP)", on{&cfg.NoPortMap}},
		{"p2p-limits", "POTLUCK_P2P_ENABLE_LIMITS", "", "enforce libp2p connection and resource limits", on{&cfg.P2PLimits}},
		{"", "POTLUCK_P2P_LOGLEVEL", "", "log level of the mesh libraries: debug, info, warn or error (default warn)", text{&cfg.P2PLogLevel}},
		{"", "POTLUCK_P2P_HEARTBEAT", "", "how often a node announces itself to the mesh, a duration (default 5s); past 8 members, slower in proportion, up to 12 times", parsed{"a duration such as 5s", func(v string) error {
			d, err := time.ParseDuration(v)
			if err == nil && d < 0 {
				err = errors.New("negative")
			}
			cfg.Heartbeat = d
			return err
		}}},

		{"share", "POTLUCK_SHARE", "", "share this machine (`MODE`): off, worker (a shard of a split model) or server (whole requests)", parsed{"off, worker or server", func(v string) error {
			m, ok := nodestate.ParseShareMode(v)
			if !ok {
				return fmt.Errorf("want off, worker or server")
			}
			cfg.Share = m
			return nil
		}}},
		{"share-memory", "POTLUCK_SHARE_MEMORY", "", "cap on the memory offered, a `SIZE` such as 12GiB (default: free VRAM and half the free RAM)", parsed{"a size such as 12GiB or 8000MB", func(v string) error {
			n, err := hw.ParseSize(v)
			cfg.ShareMemory = n
			return err
		}}},
		{"share-limit", "POTLUCK_SHARE_LIMIT", "", "`N` tokens a day this node's model serves each peer, e.g. 500k (default: no limit; this machine's own requests are never limited)", parsed{"a number of tokens such as 500k, 2M or 20000", func(v string) error {
			n, err := ledger.ParseTokens(v)
			cfg.ShareLimit = n
			return err
		}}},
		{"lend-to", "POTLUCK_LEND_TO", "", "the `MEMBERS` whose models a shard worker splits onto this computer: all, or member names and peer ids separated by commas (default: all; a name means the member first seen with it)", parsed{"all, or member names and peer ids separated by commas", func(v string) error {
			if _, err := worker.ParseLendTo(v); err != nil {
				return err
			}
			cfg.LendTo = v
			return nil
		}}},
		{"reserve-memory", "POTLUCK_RESERVE_MEMORY", "", "system memory the model this node serves leaves to everything else, a `SIZE` such as 8GiB (default 4GiB; --share-memory caps only what is lent)", parsed{"a size such as 8GiB", func(v string) error {
			n, err := hw.ParseSize(v)
			cfg.ReserveMemory = n
			return err
		}}},
		{"device", "POTLUCK_DEVICE", "", "use only these `DEVICES` of llama.cpp's, e.g. CUDA0,CPU (see 'potluck engine status'), to serve and to lend; default: every device that makes a plan faster", list{&cfg.Devices}},
		{"keep-alive", "POTLUCK_KEEP_ALIVE", "", "how long a model loaded on request stays loaded after its last request, a `DURATION` such as 10m; 0 unloads it at once, -1 keeps it (default 5m; a request's keep_alive says otherwise)", parsed{"a duration such as 5m, 0 or -1", func(v string) error {
			d, err := parseKeepAlive(v)
			cfg.KeepAlive = d
			return err
		}}},
		{"max-loaded-models", "POTLUCK_MAX_LOADED_MODELS", "0", "`N` models loaded at once at most, the one --model serves included; the least recently used idle one makes room (default 3)", count{&cfg.MaxLoadedModels}},
		{"models-memory", "POTLUCK_MODELS_MEMORY", "", "cap on the memory the models loaded here take together, a `SIZE` such as 20GiB (default: what the planner offers a model on this machine)", parsed{"a size such as 20GiB", func(v string) error {
			n, err := hw.ParseSize(v)
			cfg.ModelsMemory = n
			return err
		}}},
		{"allow-peer-loads", "POTLUCK_ALLOW_PEER_LOADS", "true", "when sharing as a server, load a model this machine has on disk when a member asks for it (`BOOL`; false: serve members only what is loaded)", parsed{"true or false", func(v string) error {
			b, err := strconv.ParseBool(v)
			cfg.NoPeerLoads = !b
			return err
		}}},
		{"split", "POTLUCK_SPLIT", "", "how a model is split (`MODE`): fit (the fastest plan that holds it) or all (every device)", parsed{"fit or all", func(v string) error {
			m, err := engine.ParseSplitMode(v)
			if err == nil {
				cfg.Split = m
			}
			return err
		}}},
	})
}

// engineSettings is the part of the table that says which llama.cpp to run
// and where to get it: the node's, and `potluck engine`'s.
func engineSettings(c *app.EngineConfig) []setting {
	return []setting{
		{"llama-version", "POTLUCK_LLAMA_VERSION", "", "the llama.cpp `VERSION` to run and provision, e.g. " + runtimes.DefaultVersion + " (default: the one this Potluck pins, " + runtimes.DefaultVersion + "; \"debian\": Debian's)", parsed{"a llama.cpp release such as " + runtimes.DefaultVersion, func(v string) error {
			pv, err := runtimes.ParseVersion(v)
			c.Version = pv
			return err
		}}},
		{"backend", "POTLUCK_LLAMA_BACKEND", "auto", "the llama.cpp `BUILD` to provision: auto (from the GPUs), " + strings.Join(runtimes.Backends, ", "), text{&c.Backend}},
		{"releases", "POTLUCK_LLAMA_RELEASES", "", "the `URL` of a releases API with llama.cpp's archives, a mirror of " + runtimes.DefaultReleases, text{&c.Releases}},
		{"mirror", "POTLUCK_DEBIAN_MIRROR", "", "the `URL` of a Debian archive for Debian's llama.cpp packages, where the apt sources name none", text{&c.Mirror}},
	}
}

// modelsDirsSetting is --models-dir: more directories of GGUF models.
func modelsDirsSetting(dirs *[]string) setting {
	return setting{"models-dir", "POTLUCK_MODELS_DIRS", "", "one more `DIR` of GGUF models to list and serve from; repeat for more", paths{dirs}}
}

// text is a string, taken as given; an empty variable counts as unset.
type text struct{ p *string }

func (d text) bind(fs *flag.FlagSet, s setting, _ *envErrors) {
	*d.p = s.def
	if s.env != "" {
		*d.p = env(s.env, s.def)
	}
	if s.flag != "" {
		fs.StringVar(d.p, s.flag, *d.p, s.help())
	}
}

// on is a switch; its variable takes what strconv.ParseBool takes. It is
// off by default.
type on struct{ p *bool }

func (d on) bind(fs *flag.FlagSet, s setting, bad *envErrors) {
	fs.BoolVar(d.p, s.flag, bad.bool(s.env), s.help())
}

// count is a whole number; its variable's must be 0 or more.
type count struct{ p *int }

func (d count) bind(fs *flag.FlagSet, s setting, bad *envErrors) {
	def, err := strconv.Atoi(s.def)
	if err != nil {
		panic("setting " + s.flag + ": default " + strconv.Quote(s.def) + " is no number")
	}
	fs.IntVar(d.p, s.flag, bad.int(s.env, def), s.help())
}

// list is values separated by commas; the flag replaces the variable's.
type list struct{ p *[]string }

func (d list) bind(fs *flag.FlagSet, s setting, _ *envErrors) {
	*d.p = splitList(env(s.env, s.def))
	fs.Func(s.flag, s.help(), func(v string) error {
		*d.p = splitList(v)
		return nil
	})
}

// paths is directories: the variable's, a path list, and one more for each
// flag.
type paths struct{ p *[]string }

func (d paths) bind(fs *flag.FlagSet, s setting, _ *envErrors) {
	*d.p = filepath.SplitList(env(s.env, s.def))
	fs.Func(s.flag, s.help(), func(v string) error {
		*d.p = append(*d.p, v)
		return nil
	})
}

// secretFile is a secret read from the file the flag names, which only its
// owner may read.
type secretFile struct{ p *string }

func (d secretFile) bind(fs *flag.FlagSet, s setting, _ *envErrors) {
	fs.Func(s.flag, s.help(), func(path string) error {
		v, err := readSecretFile(path)
		*d.p = v
		return err
	})
}

// parsed is a value that set reads, checks and puts in place; want says
// what a variable that set refuses should have held.
type parsed struct {
	want string
	set  func(string) error
}

func (d parsed) bind(fs *flag.FlagSet, s setting, bad *envErrors) {
	if s.flag != "" {
		fs.Func(s.flag, s.help(), d.set)
	}
	if v := env(s.env, s.def); v != "" {
		if err := d.set(v); err != nil {
			bad.add(s.env, v, d.want)
		}
	}
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

// parseKeepAlive reads --keep-alive: a duration, or a number of seconds;
// 0 is none and a negative one forever, as Ollama's keep_alive.
func parseKeepAlive(v string) (time.Duration, error) {
	v = strings.TrimSpace(v)
	d, err := time.ParseDuration(v)
	if err != nil {
		f, ferr := strconv.ParseFloat(v, 64)
		if ferr != nil {
			return 0, err
		}
		d = time.Duration(f * float64(time.Second))
	}
	switch {
	case d < 0:
		return sched.Forever, nil
	case d == 0:
		return sched.NoKeepAlive, nil
	}
	return d, nil
}

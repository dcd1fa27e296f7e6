package main

import (
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/potluck-gpu/potluck/app"
	"github.com/potluck-gpu/potluck/nodestate"
)

// parseNode binds the node's table to a fresh config, as `potluck run` does,
// and parses args.
func parseNode(t *testing.T, args ...string) (app.Config, string, error) {
	t.Helper()
	cfg := app.DefaultConfig()
	var level string
	var dirs []string
	var bad envErrors
	fs := flag.NewFlagSet("potluck run", flag.ContinueOnError)
	fs.SetOutput(new(strings.Builder))
	bindSettings(fs, nodeSettings(&cfg, &level, &dirs), &bad)
	if err := fs.Parse(args); err != nil {
		return cfg, level, err
	}
	return cfg, level, bad.err()
}

// noVariable are the node's flags with no variable of their own, and why.
var noVariable = map[string]string{
	"api-key-file":   "the key itself is POTLUCK_API_KEY",
	"admin-key-file": "the key itself is POTLUCK_ADMIN_KEY",
	"token-file":     "the token itself is POTLUCK_P2P_TOKEN",
	"llama-dir":      "POTLUCK_LLAMA_DIR is a place the search looks, after this flag",
}

// Every flag of the node has its POTLUCK_ variable, named in its help;
// no flag or variable is in the table twice.
func TestFlagsHaveVariables(t *testing.T) {
	cfg := app.DefaultConfig()
	var level string
	var dirs []string
	table := nodeSettings(&cfg, &level, &dirs)
	fs := flag.NewFlagSet("potluck run", flag.ContinueOnError)
	bindSettings(fs, table, new(envErrors))
	flags, vars := map[string]bool{}, map[string]bool{}
	for _, s := range table {
		if s.flag == "" && s.env == "" {
			t.Errorf("a setting with neither flag nor variable: %+v", s)
		}
		if s.flag != "" {
			if flags[s.flag] {
				t.Errorf("flag -%s twice in the table", s.flag)
			}
			flags[s.flag] = true
			if _, ok := noVariable[s.flag]; ok != (s.env == "") {
				t.Errorf("-%s: variable %q; every flag has one, except %v", s.flag, s.env, noVariable)
			}
			if f := fs.Lookup(s.flag); f == nil {
				t.Errorf("-%s is not defined", s.flag)
			} else if s.env != "" && !strings.HasSuffix(f.Usage, "["+s.env+"]") && !strings.HasSuffix(f.Usage, "["+s.env+", a path list]") {
				t.Errorf("-%s: its help %q does not name %s", s.flag, f.Usage, s.env)
			}
		}
		if s.env != "" {
			if !strings.HasPrefix(s.env, "POTLUCK_") {
				t.Errorf("-%s: variable %s is no POTLUCK_ one", s.flag, s.env)
			}
			if vars[s.env] {
				t.Errorf("%s twice in the table", s.env)
			}
			vars[s.env] = true
		}
		switch s.to.(type) {
		case text, parsed:
		default:
			if s.flag == "" {
				t.Errorf("%s: a %T needs a flag", s.env, s.to)
			}
		}
		if _, ok := s.to.(on); ok && s.def != "" {
			t.Errorf("-%s: a switch is off by default, not %q", s.flag, s.def)
		}
	}
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n != len(flags) {
		t.Errorf("%d flags defined, %d in the table", n, len(flags))
	}
}

// A variable takes effect, a flag wins over it, and a variable that
// cannot be read stops the start with a message that names it.
func TestFlagsFromEnvironment(t *testing.T) {
	def, level, err := parseNode(t)
	if err != nil || level != "info" || def.Share == nodestate.ShareWorker || def.CtxSize == 4096 {
		t.Fatalf("defaults: %v, level %q, share %q", err, level, def.Share)
	}
	t.Setenv("POTLUCK_CTX_SIZE", "4096")
	t.Setenv("POTLUCK_SHARE", "worker")
	t.Setenv("POTLUCK_DEVICE", "CUDA0, CPU")
	t.Setenv("POTLUCK_P2P_DISABLE_MDNS", "1")
	t.Setenv("POTLUCK_LOG_LEVEL", "debug")
	cfg, level, err := parseNode(t)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.CtxSize != 4096 || cfg.Share != nodestate.ShareWorker || strings.Join(cfg.Devices, "|") != "CUDA0|CPU" || !cfg.NoMDNS || level != "debug" {
		t.Errorf("from the environment: ctx %d, share %q, devices %q, no-mdns %v, level %q", cfg.CtxSize, cfg.Share, cfg.Devices, cfg.NoMDNS, level)
	}
	cfg, _, err = parseNode(t, "--ctx-size", "8192", "--share", "server", "--device", "CPU", "--no-mdns=false")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.CtxSize != 8192 || cfg.Share != nodestate.ShareServer || strings.Join(cfg.Devices, "|") != "CPU" || cfg.NoMDNS {
		t.Errorf("flags over the environment: ctx %d, share %q, devices %q, no-mdns %v", cfg.CtxSize, cfg.Share, cfg.Devices, cfg.NoMDNS)
	}

	t.Setenv("POTLUCK_CTX_SIZE", "big")
	t.Setenv("POTLUCK_SPLIT", "half")
	_, _, err = parseNode(t, "--ctx-size", "1024")
	want := "POTLUCK_CTX_SIZE=\"big\": want a whole number, 0 or more\nPOTLUCK_SPLIT=\"half\": want fit or all"
	if err == nil || err.Error() != want {
		t.Errorf("bad variables: %v; want\n%s", err, want)
	}
}

// A variable reaches a command through the whole command line: the
// client commands ask the node at POTLUCK_API.
func TestFlagsVariableReachesCommand(t *testing.T) {
	t.Setenv("POTLUCK_API", "127.0.0.1:1")
	code, _, errs := potluck(t, "usage")
	if code != 1 || !strings.Contains(errs, "is a node running at http://127.0.0.1:1?") {
		t.Errorf("POTLUCK_API=127.0.0.1:1 potluck usage: exit %d, %q", code, errs)
	}
	code, _, errs = potluck(t, "usage", "--api", "127.0.0.1:2")
	if code != 1 || !strings.Contains(errs, "http://127.0.0.1:2?") {
		t.Errorf("--api over POTLUCK_API: exit %d, %q", code, errs)
	}
}

// The README's table of `potluck run` flags names every flag and variable
// of the table, and no flag the node lacks.
func TestFlagsInREADME(t *testing.T) {
	data, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(data)
	start := strings.Index(readme, "### `potluck run` flags")
	if start < 0 {
		t.Fatal("README.md has no section \"### `potluck run` flags\"")
	}
	section := readme[start:]
	if end := strings.Index(section[4:], "\n#"); end >= 0 {
		section = section[:end+4]
	}
	cfg := app.DefaultConfig()
	var level string
	var dirs []string
	table := nodeSettings(&cfg, &level, &dirs)
	known := map[string]bool{}
	for _, s := range table {
		if s.flag != "" {
			known[s.flag] = true
			if !strings.Contains(section, "`--"+s.flag+"`") && !strings.Contains(section, "`--"+s.flag+" ") {
				t.Errorf("README.md's flags do not list --%s", s.flag)
			}
		}
		if s.env != "" && !strings.Contains(section, "`"+s.env+"`") {
			t.Errorf("README.md's flags do not list %s", s.env)
		}
	}
	seen := map[string]int{}
	for _, row := range strings.Split(section, "\n") {
		if !strings.HasPrefix(row, "| `--") {
			continue
		}
		name := strings.TrimPrefix(strings.FieldsFunc(row, func(r rune) bool { return r == '`' || r == ' ' || r == '|' })[0], "--")
		seen[name]++
		if !known[name] {
			t.Errorf("README.md lists --%s, which `potluck run` does not have", name)
		}
		if seen[name] == 2 {
			t.Errorf("README.md lists --%s twice", name)
		}
	}
}

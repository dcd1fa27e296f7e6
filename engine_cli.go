package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"

	"strings"
	"text/tabwriter"
	"time"

	"github.com/potluck-gpu/potluck/app"
	"github.com/potluck-gpu/potluck/engine"
	"github.com/potluck-gpu/potluck/hw"
	"github.com/potluck-gpu/potluck/runtimes"
)

func cmdEngine(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	sub := ""
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sub, args = args[0], args[1:]
	}
	cfg := defaultConfig()
	fs := flag.NewFlagSet("potluck engine "+sub, flag.ContinueOnError)
	fs.StringVar(&cfg.Llama.Dir, "llama-dir", "", "`DIR` holding llama-server and rpc-server")
	var bad envErrors
	bindSettings(fs, []setting{{"dir", "POTLUCK_LLAMA_CACHE", cfg.Llama.ProvisionDir, "`DIR` of the llama.cpp builds Potluck provisions", text{&cfg.Llama.ProvisionDir}}}, &bad)
	asJSON := fs.Bool("json", false, "print JSON (status)")
	bindSettings(fs, engineSettings(&cfg.Engine), &bad)
	// `engine install --version V` reads better than --llama-version.
	fs.Func("version", "the llama.cpp `VERSION` to install (same as --llama-version)", func(v string) error {
		pv, err := runtimes.ParseVersion(v)
		cfg.Engine.Version = pv
		return err
	})
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	if err := bad.err(); err != nil {
		return err
	}
	store := runtimes.Store{Dir: cfg.Llama.ProvisionDir}
	switch sub {
	case "status":
		return engineStatus(ctx, cfg, store, *asJSON, stdout)
	case "install":
		return engineInstall(ctx, cfg.Engine, store, stdout, stderr)
	default:
		return usageError{fmt.Errorf("engine: want `status` or `install`, got %q", sub)}
	}
}

func engineInstall(ctx context.Context, c app.EngineConfig, store runtimes.Store, stdout, stderr io.Writer) error {
	bar := newProgressBar(stderr)
	client, err := runtimes.NewClient(c.Releases, "potluck/"+app.Version)
	if err != nil {
		return usageError{fmt.Errorf("--releases: %w", err)}
	}
	var report *hw.Report
	if c.Backend == "" || c.Backend == "auto" {
		if r, err := hw.Probe(ctx); err != nil {
			fmt.Fprintf(stderr, "Not looking at the GPUs (%v): the CPU build\n", err)
		} else {
			report = &r
		}
	}
	start := time.Now()
	res, err := store.Install(ctx, runtimes.InstallOptions{
		Version: c.Version, Backend: c.Backend, Hardware: report,
		Releases: client, ReleasesGiven: c.Releases != "",
		Debian:   engine.InstallOptions{Mirror: c.Mirror},
		Progress: bar.update,
	})
	bar.endLine()
	if err != nil {
		return err
	}
	rt, err := res.Build.Runtime()
	if err != nil {
		return err
	}
	v, err := rt.Probe(ctx)
	if err != nil {
		return fmt.Errorf("llama.cpp was installed but does not run: %w", err)
	}
	fmt.Fprintf(stdout, "llama.cpp %s ready in %s (RPC protocol %s), %.1fs\n", v.Server, res.Build.Dir, v.RPCProtocol, time.Since(start).Seconds())
	fmt.Fprintf(stdout, "build: %s; %s\n", res.Build.Name(), res.Choice.Why)
	for _, b := range store.Prune(res.Build.Version, runtimes.DefaultVersion) {
		fmt.Fprintf(stdout, "removed llama.cpp %s: Potluck keeps at most %d versions\n", b.Name(), runtimes.MaxVersions)
	}
	devs, problems, err := rt.Devices(ctx, nil)
	if err != nil {
		return fmt.Errorf("llama.cpp was installed but cannot list devices: %w", err)
	}
	seen := make([]string, len(devs))
	for i, d := range devs {
		seen[i] = d.Name
		if d.Description != "" {
			seen[i] += " = " + d.Description
		}
	}
	fmt.Fprintf(stdout, "devices: %s\n", strings.Join(seen, ", "))
	printProblems(stdout, problems)
	return nil
}

func printProblems(w io.Writer, problems []engine.BackendProblem) {
	for _, p := range problems {
		hint := ""
		if p.Backend == "CUDA" {
			hint = ". " + engine.CUDADriverHint
		}
		fmt.Fprintf(w, "%s backend not usable: %s%s\n", p.Backend, p.Message, hint)
	}
}

// engineStatusJSON is `potluck engine status --json`.
type engineStatusJSON struct {
	DefaultVersion string                  `json:"default_version"`
	Version        string                  `json:"version"` // the one this node runs and provisions
	Choice         runtimes.Choice         `json:"choice"`
	Installed      []installedBuild        `json:"installed"`
	Runtime        engine.Runtime          `json:"runtime"`
	Versions       engine.Versions         `json:"versions"`
	Devices        []engine.Device         `json:"devices"`
	Problems       []engine.BackendProblem `json:"backend_problems,omitempty"`
	// Outdated says why the build in use, older than DefaultVersion,
	// should be replaced.
	Outdated string `json:"outdated,omitempty"`
	Error    string `json:"error,omitempty"`
}

type installedBuild struct {
	runtimes.Build
	InUse bool `json:"in_use"`
}

func engineStatus(ctx context.Context, cfg app.Config, store runtimes.Store, asJSON bool, stdout io.Writer) error {
	version := cmp.Or(cfg.Engine.Version, runtimes.DefaultVersion)
	var out engineStatusJSON
	out.DefaultVersion, out.Version = runtimes.DefaultVersion, version
	if r, err := hw.Probe(ctx); err == nil {
		out.Choice = runtimes.ChooseFor(runtimes.Platform{OS: r.OS, Arch: r.Arch}, &r)
	}
	if cfg.Engine.Backend != "" && cfg.Engine.Backend != "auto" {
		out.Choice = runtimes.Choice{Backend: cfg.Engine.Backend, Why: "asked for with --backend"}
	}
	loc := cfg.Llama
	loc.Provisioned = func() (engine.Runtime, bool) { return store.Runtime(version, true) }
	rt, ferr := loc.Find()
	out.Runtime = rt
	for _, b := range store.Installed() {
		out.Installed = append(out.Installed, installedBuild{Build: b, InUse: ferr == nil && strings.HasPrefix(rt.Server.Path, b.Dir+string(filepath.Separator))})
	}
	var verr, derr error
	if ferr == nil {
		out.Versions, verr = rt.Probe(ctx)
		out.Devices, out.Problems, derr = rt.Devices(ctx, nil)
	}
	err := errors.Join(ferr, verr, derr)
	if runtimes.Older(out.Versions.Release, runtimes.DefaultVersion) {
		out.Outdated = runtimes.OutdatedAdvice(out.Versions.Release)
	}
	if asJSON {
		if err != nil {
			out.Error = err.Error()
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "llama.cpp for this Potluck\t%s\t(every machine of a pool runs it)\n", runtimes.DefaultVersion)
	if version != runtimes.DefaultVersion {
		fmt.Fprintf(tw, "asked for\t%s\t(--llama-version)\n", version)
	}
	if out.Choice.Backend != "" {
		fmt.Fprintf(tw, "build for this machine\t%s\t(%s)\n", out.Choice.Backend, out.Choice.Why)
	}
	if ferr == nil {
		fmt.Fprintf(tw, "llama-server\t%s\t(%s)\n", rt.Server.Path, rt.Server.Source)
		if rt.Worker.Path != "" {
			fmt.Fprintf(tw, "rpc-server\t%s\t(%s)\n", rt.Worker.Path, rt.Worker.Source)
		} else {
			fmt.Fprintf(tw, "rpc-server\tnot found\t(this node cannot share as a worker)\n")
		}
		fmt.Fprintf(tw, "version\t%s\t\n", out.Versions.Server)
		fmt.Fprintf(tw, "RPC protocol\t%s\t\n", out.Versions.RPCProtocol)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if out.Outdated != "" {
		fmt.Fprintln(stdout, "\nwarning: "+out.Outdated)
	}
	fmt.Fprintf(stdout, "\nInstalled in %s (at most %d versions are kept):\n", store.Dir, runtimes.MaxVersions)
	if len(out.Installed) == 0 {
		fmt.Fprintln(stdout, "  none: `potluck engine install`, or a node's first start, provisions "+runtimes.DefaultVersion)
	}
	for _, b := range out.Installed {
		mark := " "
		if b.InUse {
			mark = "*"
		}
		fmt.Fprintf(stdout, "%s %-24s %s\n", mark, b.Name(), b.Dir)
	}
	if ferr != nil {
		return ferr
	}
	if derr == nil {
		fmt.Fprintln(stdout)
		tw = tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "DEVICE\tBACKEND\tDESCRIPTION\tTOTAL\tFREE\n")
		for _, d := range out.Devices {
			total, free := "-", "-"
			if d.TotalBytes > 0 {
				total, free = hw.FormatSize(d.TotalBytes), hw.FormatSize(d.FreeBytes)
			}
			desc := d.Description
			if d.Backend == "CPU" && desc == "" {
				desc = "system memory: see `potluck hw`"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", d.Name, d.Backend, desc, total, free)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		printProblems(stdout, out.Problems)
	}
	return err
}

package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const mod = "github.com/potluck-gpu/potluck"

// ours names packages of this module, for a rule.
func ours(names ...string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = mod + "/" + n
	}
	return out
}

// A depRule says what a package, and every package under it, must not
// import directly.
type depRule struct {
	// not lists import paths it must not use, each with what is under it.
	not []string
	// only, when set, lists the packages of this module it may use (with
	// what is under them); every other one of ours is forbidden.
	only []string
}

var (
	// uiLibs are Fyne (tray and main only) and gin (server only).
	uiLibs = []string{"fyne.io", "github.com/gin-gonic"}
	// shell is the composition root and its front ends.
	shell = ours("app", "tray", "server")
	// harnesses drive the binary from outside; nothing of the product uses them.
	harnesses = ours("lab", "winlab", "bench")
	// core is what no library package may reach for.
	core = slices.Concat(uiLibs, shell, harnesses)
)

// depRules holds a rule for every top-level package of the module, keyed
// by its first path element ("" is main), or its first two under internal/.
// A rule for a package that does not exist yet is allowed; a package
// without a rule fails TestDependencyDirection.
var depRules = map[string]depRule{
	"": {not: slices.Concat([]string{"github.com/gin-gonic"}, harnesses)},

	// The shell: main -> tray -> app -> {server, engine, netmesh, hw}.
	"app":    {not: slices.Concat(uiLibs, ours("tray"), harnesses)},
	"tray":   {not: slices.Concat([]string{"github.com/gin-gonic"}, ours("engine", "netmesh", "server", "hw"), harnesses)},
	"server": {not: slices.Concat([]string{"fyne.io"}, ours("app", "tray", "engine", "netmesh", "hw", "host"), harnesses)},
	// Model hosting and routing sit under app, beside server, which they
	// may use; the worker and the llama.cpp keeper speak no HTTP.
	"host":  {not: slices.Concat(uiLibs, ours("app", "tray", "route", "sched"), harnesses)},
	"route": {not: slices.Concat(uiLibs, ours("app", "tray", "worker", "llama"), harnesses)},
	// The scheduler loads and unloads models, whatever hosts them.
	"sched":  {not: slices.Concat(uiLibs, ours("app", "tray", "host", "route", "worker", "llama", "netmesh"), harnesses)},
	"worker": {not: slices.Concat(core, ours("netmesh", "host", "route", "llama", "library", "hub"))},
	"llama":  {not: slices.Concat(core, ours("netmesh", "host", "route", "library", "hub"))},

	// The nouns app composes.
	"engine":   {not: slices.Concat(core, ours("netmesh", "host", "library", "hub"))},
	"netmesh":  {not: slices.Concat(core, ours("engine", "hw", "host"))},
	"hw":       {not: slices.Concat(core, ours("engine", "netmesh", "host"))},
	"runtimes": {not: slices.Concat(core, ours("netmesh", "host"))},
	"library":  {not: slices.Concat(core, ours("netmesh", "host"))},
	// Drafts are chosen and judged from models and timings alone.
	"speculate": {not: slices.Concat(core, ours("netmesh", "host", "library", "hub", "ledger"))},
	"hub":       {not: slices.Concat(core, ours("engine", "netmesh", "library", "host"))},
	"swarm":     {not: slices.Concat(core, ours("engine", "netmesh", "host"))},
	"members":   {not: slices.Concat(core, ours("engine", "hw", "host"))},
	"ledger":    {not: slices.Concat(core, ours("engine", "netmesh", "hw", "host"))},
	"rpcgate":   {not: slices.Concat(core, ours("engine", "netmesh", "host"))},
	"sandbox":   {not: slices.Concat(core, ours("engine", "netmesh", "host"))},
	"webui":     {not: slices.Concat(core, ours("engine", "netmesh", "hw", "host"))},
	"icons":     {not: slices.Concat(core, ours("engine", "netmesh", "hw", "host"))},
	"settings":  {not: slices.Concat(core, ours("host"))},
	// The shared vocabulary is a leaf above the data it shows: engines
	// and devices, the library's models and the members' names.
	"nodestate": {not: core, only: ours("engine", "hw", "library", "members")},

	// Packaging holds installers' files; internal/ holds leaves.
	"packaging":           {not: slices.Concat(core, ours("engine", "netmesh", "hw", "host"))},
	"internal/atomicfile": {not: slices.Concat(core, ours("engine", "netmesh", "hw", "host"))},
	"internal/ctxtime":    {not: slices.Concat(core, ours("engine", "netmesh", "hw", "host"))},
	"internal/download":   {not: slices.Concat(core, ours("engine", "netmesh", "hw", "host"))},
	"internal/memcg":      {not: slices.Concat(core, ours("engine", "netmesh", "hw", "host"))},
	"internal/rangeserve": {not: slices.Concat(core, ours("engine", "netmesh", "hw", "host"))},
	"internal/size":       {not: slices.Concat(core, ours("engine", "netmesh", "hw", "host"))},
	"internal/symlink":    {not: slices.Concat(core, ours("engine", "netmesh", "hw", "host"))},

	// The harnesses drive the binary, never the shell's internals.
	"internal/nodetest": {not: core},
	"lab":               {not: slices.Concat(uiLibs, shell, ours("host", "winlab", "bench"))},
	"winlab":            {not: slices.Concat(uiLibs, shell, ours("host", "lab", "bench"))},
	"bench":             {not: slices.Concat(uiLibs, shell, ours("host", "lab", "winlab"))},
}

// under says whether imp is pkg or a package under it.
func under(imp, pkg string) bool {
	return imp == pkg || strings.HasPrefix(imp, pkg+"/")
}

// ruleKey is the depRules key of the package at rel, its path in the module.
func ruleKey(rel string) string {
	parts := strings.SplitN(rel, "/", 3)
	if parts[0] == "internal" && len(parts) > 1 {
		return parts[0] + "/" + parts[1]
	}
	return parts[0]
}

// isTestHelper says whether the package at rel is, or is part of, a test
// helper package (one named xxxtest, with any commands under it).
func isTestHelper(rel string) bool {
	return slices.ContainsFunc(strings.Split(rel, "/"), func(e string) bool { return strings.HasSuffix(e, "test") })
}

// TestDependencyDirection keeps the arrows pointing one way:
// main -> tray -> app -> {server, engine, netmesh, hw}; Fyne only in tray
// and main, gin only in server, test helpers only in tests and harnesses;
// and every package has a rule.
func TestDependencyDirection(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}}:{{join .Imports \" \"}}", "./...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	checked := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, imports, _ := strings.Cut(line, ":")
		if !under(pkg, mod) {
			t.Fatalf("go list printed %q: is it run in the module?", line)
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(pkg, mod), "/")
		top, _, _ := strings.Cut(rel, "/")
		key := ruleKey(rel)
		rule, ok := depRules[key]
		if !ok {
			t.Errorf("%s has no rule: add %q to depRules in deps_test.go, saying what it must not import", pkg, key)
			continue
		}
		checked++
		harness := slices.Contains(harnesses, mod+"/"+top)
		for _, imp := range strings.Fields(imports) {
			if under(imp, "fyne.io") && top != "tray" && rel != "" {
				t.Errorf("%s imports %s: only tray and main may use Fyne", pkg, imp)
			}
			if under(imp, "github.com/gin-gonic") && top != "server" {
				t.Errorf("%s imports %s: only server may use gin", pkg, imp)
			}
			ourRel, mine := strings.CutPrefix(imp, mod+"/")
			if mine && isTestHelper(ourRel) && !isTestHelper(rel) && !harness {
				t.Errorf("%s imports %s: test helpers are for tests and the harnesses", pkg, imp)
			}
			for _, bad := range rule.not {
				if under(imp, bad) {
					t.Errorf("%s imports %s: %s must not depend on %s", pkg, imp, key, bad)
				}
			}
			if mine && rule.only != nil && !slices.ContainsFunc(rule.only, func(ok string) bool { return under(imp, ok) }) {
				t.Errorf("%s imports %s: %s may use only %v of this module", pkg, imp, key, rule.only)
			}
		}
	}
	if checked < 10 {
		t.Fatalf("checked only %d packages: is go list seeing the module?", checked)
	}
}

// TestDependencyRuleKeys keeps ruleKey's keys and depRules' in step.
func TestDependencyRuleKeys(t *testing.T) {
	for rel, want := range map[string]string{
		"": "", "app": "app", "tray/internal/cfix": "tray", "internal/size": "internal/size",
		"internal/nodetest": "internal/nodetest", "engine/ggufgen/cmd/tiny-llama": "engine",
	} {
		if got := ruleKey(rel); got != want {
			t.Errorf("ruleKey(%q) = %q, want %q", rel, got, want)
		}
	}
	for key := range depRules {
		if key != ruleKey(key) {
			t.Errorf("depRules key %q is not a rule key (%q)", key, ruleKey(key))
		}
	}
}

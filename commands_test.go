package main

import (
	"flag"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/potluck-gpu/potluck/app"
)

// potluck runs the command line in this process.
func potluck(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb strings.Builder
	code = realMain(args, &out, &errb)
	return code, out.String(), errb.String()
}

// `potluck --help`, `-h` and `help` list every command, on stdout.
func TestUsageListsCommands(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"-help"}, {"help"}} {
		code, out, errs := potluck(t, args...)
		if code != 0 || errs != "" {
			t.Errorf("potluck %s: exit %d, stderr %q", args[0], code, errs)
		}
		for _, c := range commands() {
			for _, f := range c.forms {
				if !regexp.MustCompile(`(?m)^\s+` + regexp.QuoteMeta(f.synopsis) + `\s+\S`).MatchString(out) {
					t.Errorf("potluck %s does not list %q with a line of what it does:\n%s", args[0], f.synopsis, out)
				}
			}
		}
		for _, want := range []string{"Examples:", "potluck run --help"} {
			if !strings.Contains(out, want) {
				t.Errorf("potluck %s lacks %q", args[0], want)
			}
		}
	}
}

// Each command answers --help and -h with its own usage and flags, on
// stdout, with exit status 0; `potluck help NAME` says the same.
func TestUsageOfEachCommand(t *testing.T) {
	t.Setenv("POTLUCK_DATA_DIR", t.TempDir())
	for _, c := range commands() {
		for _, h := range []string{"--help", "-h"} {
			args := append(strings.Fields(c.forms[0].synopsis)[:1], h)
			if c.name == "engine" || c.name == "members" {
				args = append(strings.Fields(c.forms[len(c.forms)-1].synopsis)[:2], h)
			}
			code, out, errs := potluck(t, args...)
			if code != 0 || errs != "" {
				t.Errorf("potluck %s: exit %d, stderr %q", strings.Join(args, " "), code, errs)
				continue
			}
			if c.name == "help" {
				continue // the whole help, tested above
			}
			for _, f := range c.forms {
				if !strings.Contains(out, "potluck "+f.synopsis) {
					t.Errorf("potluck %s: no %q in\n%s", strings.Join(args, " "), f.synopsis, out)
				}
			}
			seen := map[string]bool{}
			for _, flagName := range helpFlags(out) {
				if seen[flagName] {
					t.Errorf("potluck %s: flag -%s listed twice", strings.Join(args, " "), flagName)
				}
				seen[flagName] = true
			}
			if c.name != "version" && len(helpFlags(out)) == 0 {
				t.Errorf("potluck %s names no flags:\n%s", strings.Join(args, " "), out)
			}
		}
		if c.name == "help" {
			continue
		}
		_, viaHelp, _ := potluck(t, "help", c.name)
		if _, viaFlag, _ := potluck(t, c.name, "--help"); viaHelp != viaFlag || viaHelp == "" {
			t.Errorf("potluck help %s differs from potluck %s --help:\n%s\n---\n%s", c.name, c.name, viaHelp, viaFlag)
		}
	}
	if _, out, _ := potluck(t, "run", "--help"); !strings.Contains(out, "-share MODE") || !strings.Contains(out, "[POTLUCK_SHARE]") {
		t.Errorf("potluck run --help lacks --share and its variable:\n%s", out)
	}
}

// helpFlags are the flags a command's help lists.
func helpFlags(help string) []string {
	var names []string
	for _, m := range regexp.MustCompile(`(?m)^  -([a-z0-9-]+)`).FindAllStringSubmatch(help, -1) {
		names = append(names, m[1])
	}
	return names
}

// Every flag's argument, in every command's help, is an upper-case word
// (or none): Go's flag package takes a backquoted word in the usage as its
// name, and a stray one, such as `potluck engine status`, reads wrong.
func TestUsagePlaceholders(t *testing.T) {
	placeholder := regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`)
	check := func(where string, f *flag.Flag) {
		name, _ := flag.UnquoteUsage(f)
		if name != "" && !placeholder.MatchString(name) {
			t.Errorf("%s -%s: argument named %q; want an upper-case word such as DIR in backquotes in its usage", where, f.Name, name)
		}
	}
	fs := flag.NewFlagSet("potluck run", flag.ContinueOnError)
	cfg := app.DefaultConfig()
	var level string
	var dirs []string
	bindSettings(fs, nodeSettings(&cfg, &level, &dirs), new(envErrors))
	fs.VisitAll(func(f *flag.Flag) { check("potluck run", f) })

	// The other commands' flags, as their help prints them.
	line := regexp.MustCompile(`(?m)^  -([a-z0-9-]+)(?: (\S+))?$`)
	for _, args := range [][]string{{"token", "new"}, {"models"}, {"pull"}, {"plan"}, {"rm"}, {"members"}, {"usage"}, {"hw"}, {"engine", "status"}, {"version"}} {
		_, out, _ := potluck(t, append(args, "--help")...)
		for _, m := range line.FindAllStringSubmatch(out, -1) {
			if m[2] != "" && !placeholder.MatchString(m[2]) {
				t.Errorf("potluck %s -%s: argument named %q", strings.Join(args, " "), m[1], m[2])
			}
		}
	}
}

// `potluck --version` and `-version` print what `potluck version` does.
func TestUsageVersion(t *testing.T) {
	_, want, _ := potluck(t, "version")
	if want != "potluck "+app.Version+"\n" {
		t.Fatalf("potluck version: %q", want)
	}
	for _, f := range []string{"--version", "-version"} {
		if code, got, errs := potluck(t, f); code != 0 || got != want || errs != "" {
			t.Errorf("potluck %s: exit %d, %q %q; want %q", f, code, got, errs, want)
		}
	}
}

// A mistake on the command line is a short error and a hint, exit 2.
func TestUsageMistakes(t *testing.T) {
	for _, tc := range []struct {
		args      []string
		err, hint string
	}{
		{[]string{"bogus"}, `unknown command "bogus"`, "run 'potluck --help'"},
		{[]string{"--bogus"}, "flag provided but not defined: -bogus", "run 'potluck --help'"},
		{[]string{"run", "--bogus"}, "flag provided but not defined: -bogus", "run 'potluck run --help'"},
		{[]string{"pull", "--bogus"}, "flag provided but not defined: -bogus", "run 'potluck pull --help'"},
		{[]string{"engine", "status", "--bogus"}, "flag provided but not defined: -bogus", "run 'potluck engine --help'"},
		{[]string{"help", "bogus"}, `unknown command "bogus"`, "run 'potluck --help'"},
		{[]string{"run", "--share", "lots"}, `invalid value "lots" for flag -share: want off, worker or server`, "run 'potluck run --help'"},
	} {
		code, out, errs := potluck(t, tc.args...)
		if code != 2 || out != "" || !strings.Contains(errs, tc.err) || !strings.Contains(errs, tc.hint) {
			t.Errorf("potluck %s: exit %d, stdout %q, stderr %q; want 2 and %q, %q", strings.Join(tc.args, " "), code, out, errs, tc.err, tc.hint)
		}
		if lines := strings.Count(errs, "\n"); lines > 2 {
			t.Errorf("potluck %s: %d lines of error, want a short one:\n%s", strings.Join(tc.args, " "), lines, errs)
		}
	}
}

// The top-level help, the README's list of commands and the code agree.
func TestUsageInREADME(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range commands() {
		for _, f := range c.forms {
			if !strings.Contains(string(readme), "potluck "+strings.Fields(f.synopsis)[0]) {
				t.Errorf("README.md does not mention `potluck %s`", f.synopsis)
			}
		}
	}
}

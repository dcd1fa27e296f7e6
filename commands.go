package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/potluck-gpu/potluck/app"
)

// A command is one of potluck's subcommands: its forms, what it does, and
// the function that runs it.
type command struct {
	name  string // the word after potluck
	forms []form
	about string // more, for the command's own help; may be empty
	run   func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// A form is one way to call a command, with one line of what it does.
type form struct{ synopsis, summary string }

// commands is the command line, in the order its help lists it.
func commands() []command {
	return []command{
		{"run", []form{{"run [flags]", "start a headless node"}},
			"A node joins a network, lends this machine's GPUs and memory to it, and serves a model behind\n" +
				"OpenAI-, Anthropic- and Ollama-compatible APIs. `potluck` with no command starts the same node\n" +
				"with the tray app, where a desktop is available, and takes the same flags.\n" +
				"Each flag's environment variable is named in brackets; a flag wins over its variable.",
			func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
				return cmdRun(ctx, args, stdout, stderr, false)
			}},
		{"token", []form{{"token new [--data-dir DIR]", "print a new invite token: a new network this computer owns"}},
			"The owner key of the network stays in the data dir: the node that runs with it can remove members.",
			func(_ context.Context, args []string, stdout, stderr io.Writer) error {
				return cmdToken(args, stdout, stderr)
			}},
		{"models", []form{{"models [--json]", "the models on this machine (Potluck's, Ollama's, LM Studio's, Hugging Face's)"}}, "",
			func(_ context.Context, args []string, stdout, stderr io.Writer) error {
				return cmdModels(args, stdout, stderr)
			}},
		{"pull", []form{{"pull [flags] REF", "get a model from peers or Hugging Face"}},
			"REF is hf.co/OWNER/REPO:QUANT, OWNER/REPO:QUANT or OWNER/REPO/FILE.gguf.\n" +
				"A running node pulls it (asking its peers first); with none, it goes straight into the store.\n" +
				"HF_ENDPOINT names another hub; HF_TOKEN opens gated repositories.",
			cmdPull},
		{"plan", []form{{"plan [--model MODEL]", "how the running node splits a model over the pool"}}, "", cmdPlan},
		{"rm", []form{{"rm [flags] NAME", "remove a model from Potluck's store"}},
			"NAME is as `potluck models` lists it. Only models in Potluck's own store (<data-dir>/models) are removed,\n" +
				"with their partial downloads and what Potluck kept about them; models of Ollama, LM Studio, Hugging Face's\n" +
				"and llama.cpp's caches and --models-dir are never touched. A running node removes it (the model it\n" +
				"serves only once it serves another); with none, it goes straight from the store of --data-dir.",
			cmdRm},
		{"members", []form{
			{"members", "the members of the running node's network"},
			{"members remove WHO", "remove a member by name or peer id (owner only): the others move to a new token"},
		}, "", cmdMembers},
		{"usage", []form{{"usage [--json]", "what this computer gave to and used from each peer, in tokens"}}, "", cmdUsage},
		{"hw", []form{{"hw [--json]", "what this machine has and would offer"}}, "", cmdHW},
		{"engine", []form{
			{"engine status [flags]", "which llama.cpp is used, the builds kept here and the devices"},
			{"engine install [flags]", "provision llama.cpp (official release archives, or Debian's packages)"},
		}, "", cmdEngine},
		{"version", []form{{"version", "print the version (also --version)"}}, "",
			func(_ context.Context, args []string, stdout, _ io.Writer) error { return cmdVersion(args, stdout) }},
		{"help", []form{{"help [command]", "this help, or a command's"}}, "", cmdHelp},
	}
}

// lookup finds the command called name.
func lookup(name string) (command, bool) {
	for _, c := range commands() {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

// isHelpFlag reports whether arg asks for help.
func isHelpFlag(arg string) bool { return arg == "-h" || arg == "-help" || arg == "--help" }

// writeUsage writes potluck's help: its commands and a few examples.
func writeUsage(w io.Writer) {
	fmt.Fprint(w, "Potluck pools the GPUs and memory of your machines to run LLMs.\n\nUsage:\n\n")
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "\tpotluck [flags]\tthe tray app, or a headless node where there is no desktop")
	fmt.Fprintln(tw, "\tpotluck <command> [arguments]")
	tw.Flush()
	fmt.Fprint(w, "\nThe commands are:\n\n")
	for _, c := range commands() {
		for _, f := range c.forms {
			fmt.Fprintf(tw, "\t%s\t%s\n", f.synopsis, f.summary)
		}
	}
	tw.Flush()
	fmt.Fprint(w, "\nExamples:\n\n")
	fmt.Fprintln(tw, "\tpotluck token new\tstart a network of your own: send friends the token it prints")
	fmt.Fprintln(tw, "\tpotluck run --token-file invite.txt --share worker\tjoin a network and lend it this machine's GPUs")
	fmt.Fprintln(tw, "\tpotluck run --model OWNER/REPO:Q4_K_M\tserve a model, split over the pool, at http://127.0.0.1:8080/v1")
	tw.Flush()
	fmt.Fprint(w, "\nUse \"potluck <command> --help\" for a command's flags, and \"potluck run --help\" for the node's,\n"+
		"which \"potluck\" with no command takes too. Each of those has a POTLUCK_ environment variable.\n")
}

// writeHelp writes the help of the command whose flags fs holds: its
// forms, more about it, and its flags.
func writeHelp(w io.Writer, fs *flag.FlagSet) {
	words := strings.Fields(fs.Name())
	c, ok := command{}, false
	if len(words) > 1 {
		c, ok = lookup(words[1])
	}
	if !ok {
		c = command{forms: []form{{strings.TrimPrefix(fs.Name(), "potluck "), ""}}}
	}
	fmt.Fprint(w, "Usage:\n\n")
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	for _, f := range c.forms {
		fmt.Fprintf(tw, "\tpotluck %s\t%s\n", f.synopsis, f.summary)
	}
	tw.Flush()
	if c.about != "" {
		fmt.Fprintf(w, "\n%s\n", c.about)
	}
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n == 0 {
		return
	}
	fmt.Fprint(w, "\nFlags:\n")
	fs.SetOutput(w)
	fs.PrintDefaults()
}

// parseFlags parses a command's flags. Help (-h, --help) is written to
// stdout, and the answer is flag.ErrHelp; a flag that is not defined, or
// a value it refuses, is a usageError.
func parseFlags(fs *flag.FlagSet, args []string, stdout io.Writer) error {
	fs.SetOutput(io.Discard) // the error is returned, and printed once
	fs.Usage = func() {}
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		writeHelp(stdout, fs)
		return err
	}
	if err != nil {
		return usageError{err}
	}
	return nil
}

// cmdHelp is `potluck help [command]`.
func cmdHelp(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || isHelpFlag(args[0]) || args[0] == "help" {
		writeUsage(stdout)
		return nil
	}
	c, ok := lookup(args[0])
	if !ok || len(args) > 1 {
		return usageError{fmt.Errorf("help: unknown command %q", strings.Join(args, " "))}
	}
	return c.run(ctx, []string{"--help"}, stdout, stderr)
}

// cmdVersion is `potluck version`, and `potluck --version`.
func cmdVersion(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("potluck version", flag.ContinueOnError)
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("version: unexpected arguments: %s", strings.Join(fs.Args(), " "))}
	}
	fmt.Fprintf(stdout, "potluck %s\n", app.Version)
	return nil
}

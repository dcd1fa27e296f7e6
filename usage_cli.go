package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/potluck-gpu/potluck/ledger"
	"github.com/potluck-gpu/potluck/nodestate"
)

// cmdUsage prints the pool's accounts as the running node knows them.
func cmdUsage(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("potluck usage", flag.ContinueOnError)
	client := clientFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON, with the whole network's accounts")
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("usage: unexpected arguments: %s", strings.Join(fs.Args(), " "))}
	}
	var u nodestate.Usage
	if err := client().get(ctx, "/api/usage", &u); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, u)
	}
	if u.Self == "" {
		return errors.New("this computer is in no network: there is nothing to account for")
	}
	fmt.Fprintf(stdout, "You served %s tokens to friends, used %s (all time; today %s and %s).\n",
		ledger.FormatTokens(u.Gave.All), ledger.FormatTokens(u.Used.All), ledger.FormatTokens(u.Gave.Today), ledger.FormatTokens(u.Used.Today))
	if len(u.Peers) > 0 {
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "PEER\tGAVE TODAY\tGAVE WEEK\tGAVE ALL\tUSED TODAY\tUSED WEEK\tUSED ALL")
		for _, p := range u.Peers {
			name := p.Name
			if name == "" {
				name = p.ID
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", name,
				ledger.FormatTokens(p.Gave.Today), ledger.FormatTokens(p.Gave.Week), ledger.FormatTokens(p.Gave.All),
				ledger.FormatTokens(p.Used.Today), ledger.FormatTokens(p.Used.Week), ledger.FormatTokens(p.Used.All))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if u.ShareLimit > 0 {
		fmt.Fprintf(stdout, "Each peer may use %s tokens a day of this computer's model (--share-limit).\n", ledger.FormatTokens(float64(u.ShareLimit)))
	}
	return nil
}

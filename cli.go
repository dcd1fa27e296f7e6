package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/potluck-gpu/potluck/app"
	"github.com/potluck-gpu/potluck/netmesh"
	"github.com/potluck-gpu/potluck/nodestate"
)

// The commands here are clients of a running node's API, except `token new`.

// nodeClient talks to a running node's API.
type nodeClient struct {
	base     string // http://host:port
	key      string // API key (POTLUCK_API_KEY), for read endpoints
	adminKey string // admin key, for admin endpoints
	hc       *http.Client
}

// clientFlags binds --api and --admin-key-file and returns a function that
// builds the client once the flags are parsed.
func clientFlags(fs *flag.FlagSet) func() nodeClient {
	var api, adminKey string
	bindSettings(fs, []setting{
		{"api", "POTLUCK_API", "127.0.0.1:8080", "API `ADDR` of the running node", text{&api}},
		{"", "POTLUCK_ADMIN_KEY", "", "the node's admin key", text{&adminKey}},
		{"admin-key-file", "", "", "read the node's admin key from `FILE`, for a node on another machine [the key itself: POTLUCK_ADMIN_KEY]", secretFile{&adminKey}},
	}, nil)
	return func() nodeClient {
		base := api
		if !strings.Contains(base, "://") {
			base = "http://" + base
		}
		return nodeClient{base: strings.TrimSuffix(base, "/"), key: os.Getenv("POTLUCK_API_KEY"), adminKey: adminKey,
			hc: &http.Client{Timeout: 2 * time.Minute}}
	}
}

// running says whether a node answers at c, within 2 seconds: commands
// that can work without one (pull, rm) go through it when it does.
func (c nodeClient) running(ctx context.Context) bool {
	probe, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var st struct {
		Name string `json:"name"`
	}
	return c.get(probe, "/api/status", &st) == nil
}

// get decodes GET path into v.
func (c nodeClient) get(ctx context.Context, path string, v any) error {
	return c.do(ctx, http.MethodGet, path, nil, c.key, v)
}

// admin calls an admin endpoint with a JSON body (nil: none).
func (c nodeClient) admin(ctx context.Context, method, path string, body, v any) error {
	key := c.adminKey
	if key == "" {
		key = c.key // a loopback node needs none; a key does no harm
	}
	return c.do(ctx, method, path, body, key, v)
}

func (c nodeClient) do(ctx context.Context, method, path string, body any, key string, v any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("is a node running at %s? %w", c.base, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return answerError(method+" "+path, resp.Status, data)
	}
	if v == nil {
		return nil
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s %s: unexpected answer: %w", method, path, err)
	}
	return nil
}

// answerError is the message of a node's error answer, in OpenAI's shape.
func answerError(what, status string, body []byte) error {
	var e struct {
		Error struct{ Message string } `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil && e.Error.Message != "" {
		return errors.New(e.Error.Message)
	}
	return fmt.Errorf("%s: %s", what, status)
}

func cmdToken(args []string, stdout, stderr io.Writer) error {
	sub := ""
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sub, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("potluck token new", flag.ContinueOnError)
	var dataDir string
	bindSettings(fs, []setting{{"data-dir", "POTLUCK_DATA_DIR", app.DefaultDataDir(), "keep the network's owner key in `DIR` (the data dir of the node that will run it)", text{&dataDir}}}, nil)
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	if sub != "new" {
		return usageError{errors.New("token: want `potluck token new [--data-dir DIR]`")}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))}
	}
	owner, err := netmesh.OwnerKey(dataDir)
	if err != nil {
		return err
	}
	enc, err := netmesh.NewOwnedToken(owner.GetPublic())
	if err != nil {
		return err
	}
	// The invite lists where the node that will run with this data dir
	// listens, so that friends can join with the token alone.
	if addrs, aerr := netmesh.MachineInviteAddrs(dataDir); aerr == nil {
		tok, _ := netmesh.ParseToken(enc)
		if with, eerr := tok.WithAddrs(addrs).Encode(); eerr == nil {
			enc = with
		}
	}
	fmt.Fprintln(stdout, enc)
	fmt.Fprintf(stderr, "The owner key of this network is in %s: a node using that data dir can remove members.\n",
		filepath.Join(dataDir, netmesh.OwnerKeyFile))
	fmt.Fprintf(stderr, "The token lists this machine's addresses on port %d. Friends outside your LAN reach you once that port is forwarded, or through a member with a public address: once the node runs, copy a fresh invite (tray: Copy invite token; API: GET /api/token), which lists every member's current addresses.\n", netmesh.DefaultPort)
	return nil
}

func cmdPlan(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("potluck plan", flag.ContinueOnError)
	client := clientFlags(fs)
	model := fs.String("model", "", "the `MODEL` to plan: a library name or a GGUF path (default: the model the node serves)")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	path := "/api/plan"
	if m := *model; m != "" {
		if _, err := os.Stat(m); err == nil {
			if m, err = filepath.Abs(m); err != nil { // the node may run elsewhere
				return err
			}
		}
		path += "?model=" + url.QueryEscape(m)
	}
	var view nodestate.PlanView
	c := client()
	get := c.get
	if *model != "" {
		// Planning a file the node opens is an admin request.
		get = func(ctx context.Context, path string, v any) error { return c.admin(ctx, http.MethodGet, path, nil, v) }
	}
	if err := get(ctx, path, &view); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, view)
	}
	if view.Error != "" {
		return errors.New(view.Error)
	}
	fmt.Fprintf(stdout, "%s", view.Model)
	if view.Detail != "" {
		fmt.Fprintf(stdout, " (%s)", view.Detail)
	}
	fmt.Fprintln(stdout)
	if view.Plan != nil {
		fmt.Fprintln(stdout, view.Plan.String())
	}
	return nil
}

func cmdMembers(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	remove := len(args) > 0 && args[0] == "remove"
	name := "potluck members"
	if remove {
		name, args = name+" remove", args[1:]
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	client := clientFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	c := client()
	if remove {
		if fs.NArg() != 1 {
			return usageError{errors.New("members remove: want `potluck members remove <name or peer id>`")}
		}
		var res nodestate.RemovalResult
		if err := c.admin(ctx, http.MethodPost, "/api/members/remove", map[string]string{"peer": fs.Arg(0)}, &res); err != nil {
			return err
		}
		if *asJSON {
			return printJSON(stdout, res)
		}
		fmt.Fprintf(stdout, "Removed %s (%s). The network moved to a new token (%s).\n", cmp.Or(res.Removed.Name, "a member with no name"), res.Removed.PeerID, res.Token)
		if len(res.Moving) > 0 {
			var names []string
			for _, m := range res.Moving {
				names = append(names, m.Name)
			}
			fmt.Fprintf(stdout, "These members switch to it by themselves, now or when they next come online: %s.\n", strings.Join(names, ", "))
		}
		for _, m := range res.Skipped {
			fmt.Fprintf(stdout, "%s could not be given the new token (it runs an older Potluck): invite it again with `potluck` → Copy invite token.\n", m.Name)
		}
		return nil
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("members: unexpected arguments: %s (did you mean `potluck members remove`?)", strings.Join(fs.Args(), " "))}
	}
	var view nodestate.MembersView
	if err := c.get(ctx, "/api/members", &view); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, view)
	}
	if !view.InMesh {
		fmt.Fprintln(stdout, "This computer is in no network.")
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tPEER ID\tSTATUS\tFIRST SEEN\tLAST SEEN")
	for _, m := range view.Members {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", m.Label(), m.PeerID, m.State(), ago(m.FirstSeen), ago(m.LastSeen))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	switch {
	case view.Owner == "":
		fmt.Fprintln(stdout, "This network has no owner (its token was not made by Potluck): members cannot be removed.")
	case view.CanRemove:
		fmt.Fprintln(stdout, "This computer owns the network: `potluck members remove NAME` removes a member.")
	}
	return nil
}

// ago renders a time for a person: "now", "5m ago", or a date.
func ago(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := time.Since(t)
	switch {
	case d < 10*time.Second:
		return "now"
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return t.Local().Format("2006-01-02")
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

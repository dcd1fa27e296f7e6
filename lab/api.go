package lab

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/potluck-gpu/potluck/engine"
	"github.com/potluck-gpu/potluck/internal/nodetest"
	"github.com/potluck-gpu/potluck/nodestate"
)

// Status is the part of GET /api/status the lab reads.
type Status struct {
	Name        string   `json:"name"`
	State       string   `json:"state"`
	UptimeS     int64    `json:"uptime_s"`
	Share       string   `json:"share"`
	InMesh      bool     `json:"in_mesh"`
	Network     string   `json:"network"`
	PeerID      string   `json:"peer_id"`
	P2PAddrs    []string `json:"p2p_addrs"`
	PeersOnline int      `json:"peers_online"`
	InFlight    int      `json:"in_flight"`
	// Reachability: "public", "private" or "unknown".
	Reachability string `json:"reachability"`
	Model        *struct {
		ID     string `json:"id"`
		Ready  bool   `json:"ready"`
		Detail string `json:"detail"`
		Nodes  int    `json:"nodes"`
		State  struct {
			Starts int `json:"starts"` // llama-server starts under this plan
		} `json:"state"`
	} `json:"model"`
	Warnings    []Warning              `json:"warnings"`
	MeshTraffic *nodestate.MeshTraffic `json:"mesh_traffic"`
}

// Warning is one of a Status's warnings.
type Warning struct {
	Code     string `json:"code"`
	Severity string `json:"severity"`
	Message  string `json:"message"`
}

// ModelReady says whether the node serves its model now.
func (s Status) ModelReady() bool { return s.Model != nil && s.Model.Ready }

// Peer is one entry of GET /api/peers.
type Peer struct {
	ID            string   `json:"peer_id"`
	Name          string   `json:"name"`
	Mode          string   `json:"mode"`
	MemoryOffered uint64   `json:"memory_offered"`
	Models        []string `json:"models"`
	InFlight      int      `json:"in_flight"`
	Online        bool     `json:"online"`
	LastSeenMS    int64    `json:"last_seen_ms"`
	RTTMS         float64  `json:"rtt_ms"`
	Conn          string   `json:"conn"`
	Transport     string   `json:"transport"`
	// NoPeerLoads: a server that loads no model for members' requests.
	NoPeerLoads bool `json:"no_peer_loads"`
	// RPCRefused is what the node's RPC gate refused of the peer.
	RPCRefused *struct {
		Count  int    `json:"count"`
		Reason string `json:"reason"`
	} `json:"rpc_refused"`
}

// PlanDoc is GET /api/plan.
type PlanDoc struct {
	Model  string      `json:"model"`
	Detail string      `json:"detail"`
	Plan   engine.Plan `json:"plan"`
	Error  string      `json:"error"`
}

// Layers is how many layers node id holds in the plan.
func (d PlanDoc) Layers(id string) int {
	for _, a := range d.Plan.Nodes {
		if a.ID == id {
			return a.Layers
		}
	}
	return 0
}

// GetJSON decodes GET path on the node's API into v, within 5 seconds.
func (n *Node) GetJSON(path string, v any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := nodetest.Get(ctx, n.Client, n.URL(path), v); err != nil {
		return fmt.Errorf("%s: %w", n.Name, err)
	}
	return nil
}

// Status reads the node's /api/status.
func (n *Node) Status() (Status, error) {
	var s Status
	err := n.GetJSON("/api/status", &s)
	return s, err
}

// Peers reads the node's /api/peers.
func (n *Node) Peers() ([]Peer, error) {
	var ps []Peer
	err := n.GetJSON("/api/peers", &ps)
	return ps, err
}

// Plan reads the node's /api/plan.
func (n *Node) Plan() (PlanDoc, error) {
	var d PlanDoc
	err := n.GetJSON("/api/plan", &d)
	return d, err
}

// OnlinePeers is the set of peer ids the node sees online, or nil when its
// API does not answer.
func (n *Node) OnlinePeers() map[string]bool {
	ps, err := n.Peers()
	if err != nil {
		return nil
	}
	on := map[string]bool{}
	for _, p := range ps {
		if p.Online {
			on[p.ID] = true
		}
	}
	return on
}

// PeerID is the node's peer id; it fails the test when the node has none.
func (n *Node) PeerID() string {
	t := n.lab.t
	t.Helper()
	var id string
	n.lab.Wait(n.Name+" in the mesh", 30*time.Second, func() bool {
		s, err := n.Status()
		id = s.PeerID
		return err == nil && s.InMesh && id != ""
	})
	return id
}

// Metrics reads the node's /metrics as a map from a sample's name with its
// labels, e.g. `potluck_requests_total{backend="a",status="200"}`, to its
// value.
func (n *Node) Metrics() (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.URL("/metrics"), nil)
	if err != nil {
		return nil, err
	}
	resp, err := n.Client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s /metrics: %s", n.Name, resp.Status)
	}
	return parseMetrics(resp.Body)
}

// parseMetrics reads the Prometheus text format.
func parseMetrics(r io.Reader) (map[string]float64, error) {
	m := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		m[line[:i]] = v
	}
	return m, sc.Err()
}

// SumMetric adds up every sample of the metric name whose labels contain
// all of the given `key="value"` pairs.
func SumMetric(m map[string]float64, name string, labels ...string) float64 {
	var sum float64
	for k, v := range m {
		base, rest, _ := strings.Cut(k, "{")
		if base != name {
			continue
		}
		ok := true
		for _, l := range labels {
			if !strings.Contains(rest, l) {
				ok = false
			}
		}
		if ok {
			sum += v
		}
	}
	return sum
}

// Completion is the answer to a greedy completion.
type Completion struct {
	Text    string
	Tokens  int           // generated tokens, from usage
	Prompt  int           // prompt tokens, from usage
	Node    string        // X-Potluck-Node
	Elapsed time.Duration // the whole request
	// TokensPerSecond is llama-server's own decode speed, when it reports
	// timings; 0 otherwise.
	TokensPerSecond float64
	// Drafted and Accepted are the tokens a draft model guessed, and how
	// many of them the model kept (speculative decoding); 0 without one.
	Drafted, Accepted int
}

// Complete asks the node for a greedy completion of maxTokens tokens from the
// empty prompt.
func (n *Node) Complete(ctx context.Context, maxTokens int) (Completion, error) {
	return n.completeAt(ctx, n.URL("/v1/completions"), "", maxTokens)
}

// CompleteModel is Complete for the model the request names.
func (n *Node) CompleteModel(ctx context.Context, model string, maxTokens int) (Completion, error) {
	return n.completeAt(ctx, n.URL("/v1/completions"), model, maxTokens)
}

// CompleteAt is Complete against another server on the node's loopback,
// e.g. a llama-server a benchmark started there: addr is host:port.
func (n *Node) CompleteAt(ctx context.Context, addr string, maxTokens int) (Completion, error) {
	return n.completeAt(ctx, "http://"+addr+"/v1/completions", "", maxTokens)
}

// completeAt asks url for a greedy completion; model "" names none.
func (n *Node) completeAt(ctx context.Context, url, model string, maxTokens int) (Completion, error) {
	start := time.Now()
	req := map[string]any{"prompt": "", "max_tokens": maxTokens, "temperature": 0, "seed": 1}
	if model != "" {
		req["model"] = model
	}
	body, err := json.Marshal(req)
	if err != nil {
		return Completion{}, err
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return Completion{}, err
	}
	hreq.Header.Set("Content-Type", "application/json")
	resp, err := n.Client.Do(hreq)
	if err != nil {
		return Completion{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return Completion{}, fmt.Errorf("%s: completion: %s: %s", n.Name, resp.Status, strings.TrimSpace(string(msg)))
	}
	var out struct {
		Choices []struct {
			Text string `json:"text"`
		} `json:"choices"`
		Usage struct {
			CompletionTokens int `json:"completion_tokens"`
			PromptTokens     int `json:"prompt_tokens"`
		} `json:"usage"`
		Timings struct {
			PredictedPerSecond float64 `json:"predicted_per_second"`
			Drafted            int     `json:"draft_n"`
			Accepted           int     `json:"draft_n_accepted"`
		} `json:"timings"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return Completion{}, fmt.Errorf("%s: completion: %w", n.Name, err)
	}
	if len(out.Choices) == 0 {
		return Completion{}, fmt.Errorf("%s: completion without choices", n.Name)
	}
	return Completion{
		Text: out.Choices[0].Text, Tokens: out.Usage.CompletionTokens, Prompt: out.Usage.PromptTokens,
		Node: resp.Header.Get("X-Potluck-Node"), Elapsed: time.Since(start),
		TokensPerSecond: out.Timings.PredictedPerSecond,
		Drafted:         out.Timings.Drafted, Accepted: out.Timings.Accepted,
	}, nil
}

// StreamChat sends a streamed chat request for model and reads it to the end
// or until ctx ends.
func (n *Node) StreamChat(ctx context.Context, model string, maxTokens int) nodetest.Stream {
	return nodetest.StreamChat(ctx, n.Client, n.URL(""), model, maxTokens)
}

// ModelNodes lists the nodes the node's /v1/models names for each model.
func (n *Node) ModelNodes() (map[string][]string, error) {
	var models struct {
		Data []struct {
			ID      string `json:"id"`
			Potluck struct {
				Nodes []string `json:"nodes"`
			} `json:"potluck"`
		} `json:"data"`
	}
	if err := n.GetJSON("/v1/models", &models); err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for _, m := range models.Data {
		out[m.ID] = m.Potluck.Nodes
	}
	return out, nil
}

// Member is one entry of GET /api/members.
type Member struct {
	PeerID string `json:"peer_id"`
	Name   string `json:"name"`
	Online bool   `json:"online"`
	Self   bool   `json:"self"`
	Status string `json:"status"`
}

// Members reads the node's /api/members.
func (n *Node) Members() ([]Member, error) {
	var v struct {
		Members []Member `json:"members"`
	}
	err := n.GetJSON("/api/members", &v)
	return v.Members, err
}

// Admin calls an admin endpoint of the node's API as a client on its
// machine would, with a JSON body, and decodes the answer into v. A non-2xx
// answer is an error that quotes the API's message.
func (n *Node) Admin(path string, body, v any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	if err := nodetest.Post(ctx, n.Client, n.URL(path), b, v); err != nil {
		return fmt.Errorf("%s: %w", n.Name, err)
	}
	return nil
}

// P2PAddr is the node's full libp2p address on the LAN, for --bootstrap.
func (n *Node) P2PAddr() string {
	n.lab.t.Helper()
	return fmt.Sprintf("/ip4/%s/tcp/%d/p2p/%s", n.IP, P2PPort, n.PeerID())
}

// InviteToken reads the node's invite token (GET /api/token, an admin
// endpoint: asked from the node's own machine).
func (n *Node) InviteToken() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var v struct {
		Token string `json:"token"`
	}
	if err := nodetest.Get(ctx, n.Client, n.URL("/api/token"), &v, "Content-Type", "application/json"); err != nil {
		return "", fmt.Errorf("%s: %w", n.Name, err)
	}
	return v.Token, nil
}

// PeerByName is the node's view of the peer called name.
func (n *Node) PeerByName(name string) (Peer, bool) {
	ps, err := n.Peers()
	if err != nil {
		return Peer{}, false
	}
	for _, p := range ps {
		if p.Name == name {
			return p, true
		}
	}
	return Peer{}, false
}

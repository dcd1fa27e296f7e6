package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/potluck-gpu/potluck/netmesh"
)

// federation is a node serving the model (share server) and a client node
// with no model that reaches it through the mesh.
type federation struct {
	server, client *potluck
	direct         string // the server node's own llama-server
}

const proxyRequests = 400 // sequential requests per path and round

// federation starts the two nodes once; they stay up for the proxy and soak
// sections and stop when the benchmark ends.
func (b *bench) federation() (*federation, error) {
	if b.fed != nil {
		return b.fed, nil
	}
	b.sticky = true
	defer func() { b.sticky = false }()
	token, err := netmesh.NewToken()
	if err != nil {
		return nil, err
	}
	env := []string{"POTLUCK_P2P_HEARTBEAT=1s"}
	// Four request slots of 512 tokens.
	srv, err := b.startPotluck("fed-server", env, meshArgs(token, "--model", b.model, "--share", "server", "--ctx-size", "2048")...)
	if err != nil {
		return nil, err
	}
	st, err := srv.meshStatus()
	if err != nil {
		return nil, err
	}
	cli, err := b.startPotluck("fed-client", env, meshArgs(token, "--bootstrap", st.P2PAddrs[0])...)
	if err != nil {
		return nil, err
	}
	err = cli.waitFor(60*time.Second, 50*time.Millisecond, "the server's model in the client's /v1/models", func() bool {
		var models struct {
			Data []struct {
				ID      string
				Potluck struct{ Nodes []string } `json:"potluck"`
			} `json:"data"`
		}
		return getJSON(cli.api+"/v1/models", &models) == nil && len(models.Data) == 1 && len(models.Data[0].Potluck.Nodes) == 1
	})
	if err != nil {
		return nil, err
	}
	if err := srv.waitFor(60*time.Second, 50*time.Millisecond, "model ready", func() bool {
		s, err := srv.status()
		return err == nil && s.Model != nil && s.Model.Ready
	}); err != nil {
		return nil, err
	}
	_, args, err := srv.llamaServer()
	if err != nil {
		return nil, err
	}
	b.fed = &federation{server: srv, client: cli, direct: "http://127.0.0.1:" + argValue(args, "--port")}
	return b.fed, nil
}

func newClient(conns int) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = conns
	tr.MaxIdleConnsPerHost = conns
	return &http.Client{Transport: tr, Timeout: 2 * time.Minute}
}

type path struct {
	name   string
	base   string
	client *http.Client
}

// complete sends one short non-streaming completion and returns its latency.
func (p path) complete(model string) (time.Duration, error) {
	body := fmt.Sprintf(`{"model":%q,"prompt":"Once upon a time","max_tokens":8,"temperature":0}`, model)
	req, err := http.NewRequest(http.MethodPost, p.base+"/v1/completions", strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", "bench")
	start := time.Now()
	resp, err := p.client.Do(req)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	d := time.Since(start)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("%s: %s", p.name, resp.Status)
	}
	return d, nil
}

// streamResult is one streamed completion.
type streamResult struct {
	chunks  int
	ttfb    time.Duration
	elapsed time.Duration
	err     error
}

func (p path) stream(ctx context.Context, model string, tokens int) streamResult {
	body := fmt.Sprintf(`{"model":%q,"prompt":"Once upon a time","max_tokens":%d,"temperature":0,"stream":true,"ignore_eos":true}`, model, tokens)
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.base+"/v1/completions", strings.NewReader(body))
	if err != nil {
		return streamResult{err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	// Lets the client retry a request that met a keep-alive connection the
	// server had just closed (llama-server closes idle ones).
	req.Header.Set("Idempotency-Key", "bench")
	resp, err := p.client.Do(req)
	if err != nil {
		return streamResult{err: err, elapsed: time.Since(start)}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return streamResult{err: fmt.Errorf("%s: %s %s", p.name, resp.Status, bytes.TrimSpace(msg)), elapsed: time.Since(start)}
	}
	var r streamResult
	done := false
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "data: [DONE]" {
			done = true
			break
		}
		if strings.HasPrefix(line, "data: ") && strings.Contains(line, `"text"`) {
			if r.chunks == 0 {
				r.ttfb = time.Since(start)
			}
			r.chunks++
		}
	}
	r.elapsed = time.Since(start)
	r.err = sc.Err()
	if r.err == nil && !done {
		r.err = fmt.Errorf("%s: stream ended without [DONE]", p.name)
	}
	return r
}

// benchProxy measures what the API adds to a request: to the node's own
// llama-server, and through the mesh to a peer's.
func (b *bench) benchProxy(ctx context.Context) {
	const sec = "proxy"
	fed, err := b.federation()
	if err != nil {
		b.report.fail(sec, "federated proxy", err)
		return
	}
	paths := []path{
		{"direct", fed.direct, newClient(4)},
		{"local", fed.server.api, newClient(4)},
		{"mesh", fed.client.api, newClient(4)},
	}
	for _, p := range paths { // warm up connections, tunnel, llama-server
		for range 20 {
			if _, err := p.complete(b.alias); err != nil {
				b.report.fail(sec, "federated proxy", err)
				return
			}
		}
	}
	rounds := max(3, b.runs)
	p50 := map[string][]float64{}
	p99 := map[string][]float64{}
	for range rounds {
		lat := map[string][]float64{}
		for range proxyRequests {
			if ctx.Err() != nil {
				return
			}
			for _, i := range rand.Perm(len(paths)) {
				d, err := paths[i].complete(b.alias)
				if err != nil {
					b.report.fail(sec, "federated proxy", err)
					return
				}
				lat[paths[i].name] = append(lat[paths[i].name], ms(d))
			}
		}
		for name, l := range lat {
			p50[name] = append(p50[name], percentile(l, 50))
			p99[name] = append(p99[name], percentile(l, 99))
		}
	}
	diff := func(a, b []float64) []float64 {
		out := make([]float64, len(a))
		for i := range a {
			out[i] = a[i] - b[i]
		}
		return out
	}
	note := fmt.Sprintf("%d rounds of %d short completions (max_tokens 8) per path, paths interleaved at random; added = percentile(path) - percentile(direct) per round, median of rounds",
		rounds, proxyRequests)
	for _, p := range []struct {
		name, label string
		t50, t99    float64
	}{
		{"local", "API -> own llama-server", 1, 3},
		{"mesh", "API -> mesh -> peer", 0, 0},
	} {
		a50, a99 := diff(p50[p.name], p50["direct"]), diff(p99[p.name], p99["direct"])
		f50 := Figure{Section: sec, Name: "added p50, " + p.label, Unit: "ms", Value: median(a50), Runs: round(a50, 3),
			Anchor: "direct p50", AnchorValue: median(p50["direct"]), AnchorRuns: round(p50["direct"], 3),
			Relation: fmt.Sprintf("%.2f ms vs %.2f ms", median(p50[p.name]), median(p50["direct"]))}
		f99 := Figure{Section: sec, Name: "added p99, " + p.label, Unit: "ms", Value: median(a99), Runs: round(a99, 3),
			Anchor: "direct p99", AnchorValue: median(p99["direct"]), AnchorRuns: round(p99["direct"], 3),
			Relation: fmt.Sprintf("%.2f ms vs %.2f ms", median(p99[p.name]), median(p99["direct"]))}
		if p.t50 > 0 {
			f50.Target, f50.Met = fmt.Sprintf("<= %.0f ms", p.t50), met(f50.Value <= p.t50)
			f99.Target, f99.Met = fmt.Sprintf("<= %.0f ms", p.t99), met(f99.Value <= p.t99)
			f50.Note = note
		}
		b.report.add(f50)
		b.report.add(f99)
	}

	// Streaming throughput: one long stream at a time.
	const streamTokens = 400
	rates := map[string][]float64{}
	ttfb := map[string][]float64{}
	for range b.runs {
		for _, i := range rand.Perm(len(paths)) {
			if ctx.Err() != nil {
				return
			}
			r := paths[i].stream(ctx, b.alias, streamTokens)
			if r.err != nil {
				b.report.fail(sec, "streaming throughput", r.err)
				return
			}
			rates[paths[i].name] = append(rates[paths[i].name], float64(r.chunks)/r.elapsed.Seconds())
			ttfb[paths[i].name] = append(ttfb[paths[i].name], ms(r.ttfb))
		}
	}
	for _, p := range []struct{ name, label string }{{"local", "streaming, API -> own llama-server"}, {"mesh", "streaming, API -> mesh -> peer"}} {
		v, d := median(rates[p.name]), median(rates["direct"])
		b.report.add(Figure{Section: sec, Name: p.label, Unit: "tok/s", Value: v, Runs: round(rates[p.name], 0),
			Anchor: "direct", AnchorValue: d, AnchorRuns: round(rates["direct"], 0),
			Relation: fmt.Sprintf("%.2fx direct; first token +%.2f ms", v/d, median(ttfb[p.name])-median(ttfb["direct"])),
			Note:     fmt.Sprintf("one SSE stream of %d tokens at a time (ignore_eos), tokens / wall time from request to [DONE]", streamTokens)})
	}
}

// soakResult sums up one load run.
type soakResult struct {
	requests, errors int
	tokens           int
	lat              []float64 // ms per completed request
	ttfb             []float64
	firstErr         error
	elapsed          time.Duration
}

func soak(ctx context.Context, p path, model string, streams int, d time.Duration) soakResult {
	ctx, cancel := context.WithTimeout(ctx, d+2*time.Minute)
	defer cancel()
	deadline := time.Now().Add(d)
	var mu sync.Mutex
	var res soakResult
	var wg sync.WaitGroup
	start := time.Now()
	for range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) && ctx.Err() == nil {
				r := p.stream(ctx, model, 64)
				mu.Lock()
				res.requests++
				res.tokens += r.chunks
				if r.err != nil {
					res.errors++
					if res.firstErr == nil {
						res.firstErr = r.err
					}
				} else {
					res.lat = append(res.lat, ms(r.elapsed))
					res.ttfb = append(res.ttfb, ms(r.ttfb))
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	return res
}

// processStats is a node's memory and goroutines at one moment.
type processStats struct {
	rss        float64 // MB
	goroutines float64
}

func (p *potluck) stats() processStats {
	var s processStats
	if rss, err := rssBytes(p.pid()); err == nil {
		s.rss = float64(rss) / 1e6
	}
	resp, err := apiClient.Get(p.api + "/metrics")
	if err != nil {
		return s
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			fmt.Sscan(v, &s.goroutines)
		}
	}
	return s
}

// benchSoak runs many concurrent streams through the client node (so through
// the mesh to the server node) for a bounded time, after the same load
// straight at llama-server as the anchor.
func (b *bench) benchSoak(ctx context.Context) {
	const sec = "soak"
	fed, err := b.federation()
	if err != nil {
		b.report.fail(sec, "soak", err)
		return
	}
	direct := path{"direct", fed.direct, newClient(b.streams)}
	mesh := path{"mesh", fed.client.api, newClient(b.streams)}
	anchorDur := min(20*time.Second, b.soak)
	a := soak(ctx, direct, b.alias, b.streams, anchorDur)
	if ctx.Err() != nil {
		return
	}
	s0, c0 := fed.server.stats(), fed.client.stats()
	var early [2]float64 // RSS 5 s into the soak
	var peak [2]float64
	sampled := make(chan struct{})
	sctx, stopSampling := context.WithCancel(ctx)
	go func() {
		defer close(sampled)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for i := 1; ; i++ {
			select {
			case <-sctx.Done():
				return
			case <-t.C:
			}
			for j, p := range []*potluck{fed.client, fed.server} {
				if rss, err := rssBytes(p.pid()); err == nil {
					peak[j] = max(peak[j], float64(rss)/1e6)
					if i == 5 {
						early[j] = float64(rss) / 1e6
					}
				}
			}
		}
	}()
	r := soak(ctx, mesh, b.alias, b.streams, b.soak)
	stopSampling()
	<-sampled
	if ctx.Err() != nil {
		return
	}
	s1, c1 := fed.server.stats(), fed.client.stats()
	mesh.client.CloseIdleConnections() // what stays after this is the nodes' own
	time.Sleep(3 * time.Second)
	s2, c2 := fed.server.stats(), fed.client.stats()

	label := fmt.Sprintf("%d streams x %v through the mesh", b.streams, b.soak)
	rate, arate := float64(r.tokens)/r.elapsed.Seconds(), float64(a.tokens)/a.elapsed.Seconds()
	note := fmt.Sprintf("client node -> mesh -> server node (4 llama.cpp slots), streams of 64 tokens back to back; %d requests, %d errors", r.requests, r.errors)
	if r.firstErr != nil {
		note += fmt.Sprintf(" (first: %v)", r.firstErr)
	}
	note += fmt.Sprintf("; anchor: the same load straight at llama-server for %v, %d requests, %d errors", anchorDur, a.requests, a.errors)
	if a.firstErr != nil {
		note += fmt.Sprintf(" (first: %v)", a.firstErr)
	}
	b.report.add(Figure{Section: sec, Name: "throughput, " + label, Unit: "tok/s", Value: rate,
		Anchor: "direct", AnchorValue: arate, Relation: fmt.Sprintf("%.2fx direct", rate/arate), Note: note})
	p99, ap99 := percentile(r.lat, 99), percentile(a.lat, 99)
	b.report.add(Figure{Section: sec, Name: "request p99, " + label, Unit: "ms", Value: p99,
		Anchor: "direct", AnchorValue: ap99,
		Relation: fmt.Sprintf("%+.0f ms; p50 %.0f vs %.0f ms; first token p99 %.0f vs %.0f ms", p99-ap99, percentile(r.lat, 50), percentile(a.lat, 50), percentile(r.ttfb, 99), percentile(a.ttfb, 99))})
	errRate := 0.0
	if r.requests > 0 {
		errRate = float64(r.errors) / float64(r.requests)
	}
	b.report.add(Figure{Section: sec, Name: "errors, " + label, Unit: "%", Value: 100 * errRate, Target: "0", Met: met(r.errors == 0)})
	b.report.add(Figure{Section: sec, Name: "memory at end, client node", Unit: "MB", Value: c1.rss, Anchor: "5 s in", AnchorValue: early[0],
		Relation: fmt.Sprintf("%+.0f MB (before %.0f, peak %.0f); goroutines %.0f -> %.0f -> %.0f", c1.rss-early[0], c0.rss, peak[0], c0.goroutines, c1.goroutines, c2.goroutines),
		Note:     "RSS (sampled every second) at the end of the soak beside 5 s into it, so growth under steady load shows; goroutines from /metrics before, at the end, and 3 s after the benchmark's client closed its idle connections"})
	b.report.add(Figure{Section: sec, Name: "memory at end, server node", Unit: "MB", Value: s1.rss, Anchor: "5 s in", AnchorValue: early[1],
		Relation: fmt.Sprintf("%+.0f MB (before %.0f, peak %.0f); goroutines %.0f -> %.0f -> %.0f", s1.rss-early[1], s0.rss, peak[1], s0.goroutines, s1.goroutines, s2.goroutines)})
}

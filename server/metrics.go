package server

import (
	"net/http"
	"sync"
	"time"

	"github.com/potluck-gpu/potluck/rpcgate"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the server's Prometheus metrics, in a registry of its own.
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	inflight *prometheus.GaugeVec
	latency  *prometheus.HistogramVec
	tokens   prometheus.Counter
	refused  *prometheus.CounterVec
}

func newMetrics(s *Server) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "potluck_requests_total", Help: "OpenAI API requests by backend node and status.",
		}, []string{"backend", "status"}),
		inflight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "potluck_requests_in_flight", Help: "Requests sent to a backend and not finished.",
		}, []string{"backend"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "potluck_request_duration_seconds", Help: "Time from request to the end of its response.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120},
		}, []string{"backend"}),
		tokens: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "potluck_tokens_generated_total", Help: "Tokens generated for requests through this node.",
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "potluck_api_refused_total",
			Help: "API requests refused before any handler ran, by reason: host, origin, content-type, key, admin, busy.",
		}, []string{"reason"}),
	}
	m.reg.MustRegister(m.requests, m.inflight, m.latency, m.tokens, m.refused,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if s.node != nil {
		m.reg.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "potluck_peers_online", Help: "Peers of the mesh seen alive.",
			}, func() float64 { return float64(s.node.Counters().PeersOnline) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "potluck_tunnel_bytes_total", Help: "Bytes carried by mesh tunnels, both directions.",
			}, func() float64 { return float64(s.node.Counters().TunnelBytes) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "potluck_mesh_messages_rejected_total",
				Help: "Mesh messages dropped because their signature did not check out or they spoke for another member.",
			}, func() float64 { return float64(s.node.Counters().MessagesRejected) }),
		)
		for _, reason := range rpcgate.Reasons {
			m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name:        "potluck_rpc_refused_total",
				Help:        "Streams to this node's shard worker that the RPC gate closed, by reason.",
				ConstLabels: prometheus.Labels{"reason": reason},
			}, func() float64 { return float64(s.node.Counters().RPCRefused[reason]) }))
		}
	}
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// RequestRecord is one served request, for the dashboard's recent list.
type RequestRecord struct {
	Time     time.Time     `json:"time"`
	Model    string        `json:"model"`
	Node     string        `json:"node"`
	Status   int           `json:"status"`
	Duration time.Duration `json:"duration_ns"`
	Tokens   int           `json:"tokens"`
}

// recentRequests keeps the last requests served.
type recentRequests struct {
	mu   sync.Mutex
	list []RequestRecord
}

const recentMax = 50

func (r *recentRequests) add(rec RequestRecord) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.list = append(r.list, rec)
	if len(r.list) > recentMax {
		r.list = r.list[len(r.list)-recentMax:]
	}
}

func (r *recentRequests) snapshot() []RequestRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]RequestRecord(nil), r.list...)
}

func (s *Server) record(rec RequestRecord) {
	s.recent.add(rec)
	if s.cfg.OnRequest != nil {
		s.cfg.OnRequest(rec)
	}
}

// Recent returns the latest requests, oldest first.
func (s *Server) Recent() []RequestRecord { return s.recent.snapshot() }

// InFlight is how many requests this server has in flight.
func (s *Server) InFlight() int { return s.inflight.total() }

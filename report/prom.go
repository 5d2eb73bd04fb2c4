package report

import (
	"io"
	"strconv"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
)

// latencyBuckets are the connect-latency histogram's upper bounds, in
// seconds: loopback handshakes take tens of microseconds, a SYN
// retransmitted after a drop a second or more.
var latencyBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// promCollector gives a summary's figures as Prometheus metrics, each with
// the target and shard labels ("all" for a whole or a merged run).
type promCollector struct {
	s      *Summary
	at     time.Time
	labels prometheus.Labels
}

// NewPromRegistry is a registry holding the run's figures, for the
// node_exporter textfile collector or a Pushgateway.
func NewPromRegistry(s *Summary, at time.Time) *prometheus.Registry {
	return promRegistry(s, at, prometheus.Labels{"target": s.TargetAddr, "shard": shardLabel(s)})
}

// shardLabel is the shard's index, or "all" for a whole or merged run.
func shardLabel(s *Summary) string {
	if s.Shard != nil {
		return strconv.Itoa(s.Shard.Index)
	}
	return "all"
}

func promRegistry(s *Summary, at time.Time, labels prometheus.Labels) *prometheus.Registry {
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(&promCollector{s: s, at: at, labels: labels})
	return reg
}

func (c *promCollector) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(c, ch) }

func (c *promCollector) desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("connlimit_"+name, help, labels, c.labels)
}

func (c *promCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	gauge := func(d *prometheus.Desc, v float64, lv ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, lv...)
	}
	gauge(c.desc("requested_connections", "Connections the run was asked to make."), float64(s.Requested))
	d := c.desc("attempts", "Connection attempts of the run, by what happened to them; they sum to the attempts made.", "outcome")
	for _, o := range OutcomeNames() {
		gauge(d, float64(s.Outcomes[o]), o)
	}
	gauge(c.desc("first_limit_at", "Connections held when the first limit was met (0 when none was)."), float64(s.FirstLimitAt))
	gauge(c.desc("verdict_info", "The first limit met (none when none was), and the setting behind it.", "limit", "setting"), 1, s.FirstLimit, s.FirstLimitSetting)
	gauge(c.desc("connect_rate_per_second", "Handshakes completed per second over the ramp."), s.ConnectRatePerS)
	gauge(c.desc("run_duration_seconds", "How long the run took, start to reports."), s.DurationS)
	gauge(c.desc("interrupted", "1 when the run was stopped (a signal) before it completed."), b2f(s.Interrupted))
	gauge(c.desc("run_timestamp_seconds", "When the run's reports were written, in Unix seconds."), float64(c.at.UnixNano())/1e9)
	fds := c.desc("target_fds", "The most descriptors a process behind the target held during the run.", "pid")
	limit := c.desc("target_nofile", "The soft RLIMIT_NOFILE of a process behind the target.", "pid")
	for _, p := range s.TargetProcesses {
		if p.Readable {
			pid := strconv.Itoa(p.PID)
			gauge(fds, float64(p.FDsMax), pid)
			gauge(limit, float64(p.NoFileSoft), pid)
		}
	}
	gate := c.desc("gate_passed", "1 when the CI gate passed, 0 when it failed.", "gate")
	for _, g := range s.Gates {
		gauge(gate, b2f(g.Passed), g.Gate)
	}
	h := s.LatencyHistogram()
	buckets := make(map[float64]uint64, len(latencyBuckets))
	var below uint64
	k := 0
	for _, b := range h.Distribution() {
		for k < len(latencyBuckets) && float64(b.From) > latencyBuckets[k]*1e6 {
			buckets[latencyBuckets[k]] = below
			k++
		}
		below += uint64(b.Count)
	}
	for ; k < len(latencyBuckets); k++ {
		buckets[latencyBuckets[k]] = below
	}
	sum := h.Mean() * float64(h.TotalCount()) / 1e6
	ch <- prometheus.MustNewConstHistogram(c.desc("connect_latency_seconds", "TCP handshake times of the run's connections (from an HdrHistogram, 3 significant digits)."),
		uint64(h.TotalCount()), sum, buckets)
}

// WriteProm writes the registry in the text exposition format.
func WriteProm(w io.Writer, reg *prometheus.Registry) error {
	mfs, err := reg.Gather()
	if err != nil {
		return err
	}
	enc := expfmt.NewEncoder(w, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			return err
		}
	}
	return nil
}

// LatencyHistogram is the run's handshake times as a histogram: built with
// the summary, or decoded from a shard's; empty when neither.
func (s *Summary) LatencyHistogram() *hdrhistogram.Histogram {
	if s.latency != nil {
		return s.latency
	}
	if s.Shard != nil {
		if h, err := DecodeHist(s.Shard.ConnectLatencyHDR); err == nil {
			return h
		}
	}
	return NewLatencyHist()
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

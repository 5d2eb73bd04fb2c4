package report

import (
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// inspectCollector gives an inspection's headroom as Prometheus metrics:
// a cron running inspect --prom feeds node_exporter's textfile collector,
// and an alert fires on the headroom before the limit is met.
type inspectCollector struct {
	in *Inspection
	at time.Time
}

func (c *inspectCollector) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(c, ch) }

func (c *inspectCollector) Collect(ch chan<- prometheus.Metric) {
	l := prometheus.Labels{"target": c.in.Target}
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("connlimit_inspect_"+name, help, labels, l)
	}
	gauge := func(d *prometheus.Desc, v float64, lv ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, lv...)
	}
	if h := c.in.Headroom; h != nil {
		gauge(desc("nearest_headroom_connections", "Connections that fit before the nearest limit.", "limit"), float64(h.Connections), h.Limit)
	}
	head := desc("headroom_connections", "Connections a process behind the listener can still take before its nearest own limit.", "pid", "name", "limit")
	fds := desc("fds", "Descriptors the process has open.", "pid", "name")
	soft := desc("nofile_soft", "The process's soft RLIMIT_NOFILE.", "pid", "name")
	for _, p := range c.in.Processes {
		pid := strconv.Itoa(p.PID)
		if p.Headroom >= 0 {
			gauge(head, float64(p.Headroom), pid, p.Name, p.HeadroomBy)
		}
		if p.FDs >= 0 {
			gauge(fds, float64(p.FDs), pid, p.Name)
		}
		if p.NoFileSoft > 0 && p.NoFileSoft != ^uint64(0) {
			gauge(soft, float64(p.NoFileSoft), pid, p.Name)
		}
	}
	if ls := c.in.Listener; ls != nil {
		gauge(desc("established_connections", "Established connections on the listener's port."), float64(ls.Established))
		gauge(desc("accept_queue", "Connections waiting in the listener's accept queue."), float64(ls.AcceptQueue))
		gauge(desc("listen_backlog", "The listener's backlog."), float64(ls.Backlog))
	}
	gauge(desc("timestamp_seconds", "When the inspection was made, in Unix seconds."), float64(c.at.UnixNano())/1e9)
}

// NewInspectPromRegistry holds the inspection's figures.
func NewInspectPromRegistry(in *Inspection, at time.Time) *prometheus.Registry {
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(&inspectCollector{in: in, at: at})
	return reg
}

// WriteInspectJUnit writes the inspection as JUnit XML: a testcase for
// the nearest limit, and for --require-headroom (want > 0) one per process
// behind the port, failed below it.
func WriteInspectJUnit(w io.Writer, in *Inspection, want int64, host string, at time.Time) error {
	suite := junitSuite{Name: "connlimit inspect " + in.Target, Time: "0", Timestamp: at.UTC().Format("2006-01-02T15:04:05"), Hostname: host}
	suite.Cases = append(suite.Cases, junitCase{Name: "nearest limit", Classname: "connlimit.inspect", Time: "0", SystemOut: in.VerdictLine()})
	if h := in.Headroom; h != nil {
		suite.Properties = append(suite.Properties, junitProperty{"nearest_limit", h.Limit}, junitProperty{"nearest_headroom", strconv.FormatInt(h.Connections, 10)})
	}
	if want > 0 {
		for _, p := range in.Processes {
			c := junitCase{Name: fmt.Sprintf("--require-headroom %d: pid %d %s", want, p.PID, p.Name), Classname: "connlimit.gates", Time: "0",
				SystemOut: fmt.Sprintf("%d connections of headroom (%s)", p.Headroom, p.HeadroomBy)}
			if p.Headroom >= 0 && p.Headroom < want {
				c.Failure = &junitProblem{Message: fmt.Sprintf("gate --require-headroom failed: want at least %d connections of headroom, got %d for pid %d (%s)", want, p.Headroom, p.PID, p.HeadroomBy),
					Type: "gate", Text: in.VerdictLine()}
				suite.Failures++
			}
			suite.Cases = append(suite.Cases, c)
		}
	}
	suite.Tests = len(suite.Cases)
	return writeJUnitDoc(w, junitSuites{Name: "connlimit", Tests: suite.Tests, Failures: suite.Failures, Time: "0", Suites: []junitSuite{suite}})
}

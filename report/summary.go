// Package report turns a run's typed results into what people and CI jobs
// read: the plain-words summary, its JSON form, the per-attempt CSV, the
// timeline and the live progress display. It never writes to os.Stdout
// itself: every encoder takes an io.Writer.
package report

import (
	"encoding/json"
	"io"
	"net/netip"
	"slices"
	"time"

	"github.com/connlimit/connlimit/limits"
	"github.com/connlimit/connlimit/loadgen"
)

// SchemaVersion is the JSON summary's version; it changes only when a key
// changes meaning or goes away.
const SchemaVersion = 1

// First-limit verdicts. CI jobs match on these words: never rename them.
const (
	LimitNone               = "none"
	LimitTargetFD           = "target-fd-limit"
	LimitTargetNotAccepting = "target-not-accepting"
	LimitAcceptQueueFull    = "accept-queue-full"
	LimitTargetClosed       = "target-closed"
	LimitClientFD           = "client-fd-limit"
	LimitSystemFD           = "system-fd-limit"
	LimitEphemeralPorts     = "ephemeral-ports"
	LimitRefused            = "refused"
)

// Summary is the run in figures. Its JSON form is the --json report.
type Summary struct {
	SchemaVersion int    `json:"schema_version"`
	Interrupted   bool   `json:"interrupted"`
	Error         string `json:"error,omitempty"`
	FirstLimit    string `json:"first_limit"`
	FirstLimitAt  int64  `json:"first_limit_at"`
	// The setting behind the first limit, its value, and the change that
	// would move it; empty for "none".
	FirstLimitSetting string         `json:"first_limit_setting"`
	FirstLimitValue   string         `json:"first_limit_value"`
	FirstLimitFix     string         `json:"first_limit_fix"`
	TargetAddr        string         `json:"target_addr"`
	Requested         int            `json:"requested"`
	Attempted         int            `json:"attempted"`
	Outcomes          map[string]int `json:"outcomes"`
	ConnectLatencyUS  Latency        `json:"connect_latency_us"`
	ConnectRatePerS   float64        `json:"connect_rate_per_s"`
	DurationS         float64        `json:"duration_s"`
	Limits            Limits         `json:"limits"`
	Generator         Generator      `json:"generator"`
	Target            *Target        `json:"target"`
	Kernel            *Kernel        `json:"kernel"`
}

// Kernel is the kernel's view of the target's listener during the run.
type Kernel struct {
	// Namespace is "private" when the run had a network namespace of its own
	// (run --netns), else "host".
	Namespace string `json:"namespace"`
	// Exact is true when nothing but the run could move the counters.
	Exact bool `json:"exact"`
	// Unavailable names the readings that could not be made.
	Unavailable string `json:"unavailable,omitempty"`
	// ListenBacklog is the listener's backlog; the accept queue holds one
	// more. -1 when the listener was not seen.
	ListenBacklog int64 `json:"listen_backlog"`
	// AcceptQueueMax is the longest accept queue sampled; AcceptQueueEnd the
	// queue at the end of the hold, before teardown. -1 when not seen.
	AcceptQueueMax int64 `json:"accept_queue_max"`
	AcceptQueueEnd int64 `json:"accept_queue_end"`
	// TCPExt is the growth of the TcpExt counters over the run.
	TCPExt limits.TCPExt `json:"tcpext_delta"`
}

// Latency percentiles of the handshake, in microseconds, over connected attempts.
type Latency struct {
	P50 int64 `json:"p50"`
	P90 int64 `json:"p90"`
	P99 int64 `json:"p99"`
	Max int64 `json:"max"`
}

// Limits is what was read before the run.
type Limits struct {
	Generator limits.NoFile  `json:"generator_nofile"`
	Sysctls   limits.Sysctls `json:"sysctls"`
}

// Generator describes the process that made the connections.
type Generator struct {
	PID       int `json:"pid"`
	Connected int `json:"connected"`
	// ConnectSpanS is from the first socket() to the last completed handshake.
	ConnectSpanS float64 `json:"connect_span_s"`
}

// Target is the built-in target's own account.
type Target struct {
	PID          int    `json:"pid"`
	NoFileSoft   uint64 `json:"nofile_soft"`
	NoFileHard   uint64 `json:"nofile_hard"`
	Accepted     int64  `json:"accepted"`
	AcceptErrors int64  `json:"accept_errors"`
	OnEMFILE     string `json:"on_emfile"`
	Backlog      int    `json:"backlog"` // 0: net.core.somaxconn
	Shed         int64  `json:"shed"`    // closed at once by the shed policy
	// MaxConns is the application connection cap (0: none), OnMaxConns what
	// the target does there, Capped the connections it closed at the cap.
	MaxConns     int          `json:"max_conns"`
	OnMaxConns   string       `json:"on_max_conns"`
	Capped       int64        `json:"capped"`
	AcceptDelayS float64      `json:"accept_delay_s"`
	FirstEMFILE  *FirstEMFILE `json:"first_emfile"`
}

// FirstEMFILE is the target's state when accept() first failed for lack of descriptors.
type FirstEMFILE struct {
	Errno    string `json:"errno"`
	Accepted int64  `json:"accepted"`
	FDsOpen  int    `json:"fds_open"`
	// SlotsUsed are the open descriptors numbered below the soft limit:
	// connections + len(OtherFDs).
	SlotsUsed     int         `json:"slots_used"`
	OtherFDs      []limits.FD `json:"other_fds"`
	AboveLimitFDs []limits.FD `json:"above_limit_fds"`
}

// Input is everything Build needs.
type Input struct {
	Requested   int
	Target      netip.AddrPort
	Results     []loadgen.Result
	GeneratorID int
	Limits      Limits
	TargetInfo  *Target // nil when the target is not ours
	Kernel      *Kernel // nil when not sampled
	Duration    time.Duration
	Interrupted bool
	Err         error
}

// Build computes the summary. It does not modify in.Results.
func Build(in Input) Summary {
	s := Summary{
		SchemaVersion: SchemaVersion,
		Interrupted:   in.Interrupted,
		TargetAddr:    in.Target.String(),
		Requested:     in.Requested,
		Attempted:     len(in.Results),
		Outcomes:      map[string]int{},
		DurationS:     in.Duration.Seconds(),
		Limits:        in.Limits,
		Generator:     Generator{PID: in.GeneratorID},
		Target:        in.TargetInfo,
		Kernel:        in.Kernel,
	}
	if in.Err != nil {
		s.Error = in.Err.Error()
	}
	for _, o := range loadgen.Outcomes() {
		s.Outcomes[o.String()] = 0
	}
	lat := make([]time.Duration, 0, len(in.Results))
	var first, last time.Duration = -1, 0
	for i := range in.Results {
		r := &in.Results[i]
		s.Outcomes[r.Outcome.String()]++
		if first < 0 {
			first = r.Start
		}
		if r.Connect > 0 {
			lat = append(lat, r.Connect)
			last = max(last, r.Start+r.Connect)
		}
	}
	s.Generator.Connected = len(lat)
	if len(lat) > 0 {
		slices.Sort(lat)
		pct := func(p int) int64 { return micros(lat[(len(lat)*p+99)/100-1]) }
		s.ConnectLatencyUS = Latency{P50: pct(50), P90: pct(90), P99: pct(99), Max: micros(lat[len(lat)-1])}
		span := last - first
		s.Generator.ConnectSpanS = span.Seconds()
		if span > 0 {
			s.ConnectRatePerS = float64(len(lat)) / span.Seconds()
		}
	}
	s.FirstLimit, s.FirstLimitAt = firstLimit(in.Results, in.TargetInfo)
	s.FirstLimitSetting, s.FirstLimitValue, s.FirstLimitFix = s.limitDetail()
	return s
}

// firstLimit names the limit the run met first and the count at which it
// did: the target's accepted connections at its first EMFILE, or else the
// number of attempts that had succeeded before the first that did not.
func firstLimit(results []loadgen.Result, t *Target) (string, int64) {
	if t != nil && t.FirstEMFILE != nil {
		return LimitTargetFD, t.FirstEMFILE.Accepted
	}
	for i := range results {
		// Served and Pending name no limit; nor does Other, whose errno stays in the counts.
		if v, ok := limitOf[results[i].Outcome]; ok {
			return v, int64(i)
		}
	}
	return LimitNone, int64(len(results))
}

// limitOf is the limit an outcome points to when the target gave no evidence.
var limitOf = map[loadgen.Outcome]string{
	loadgen.Queued:          LimitTargetNotAccepting,
	loadgen.ConnectTimeout:  LimitAcceptQueueFull,
	loadgen.Closed:          LimitTargetClosed,
	loadgen.Refused:         LimitRefused,
	loadgen.ClientFDLimit:   LimitClientFD,
	loadgen.SystemFDLimit:   LimitSystemFD,
	loadgen.NoEphemeralPort: LimitEphemeralPorts,
}

// WriteJSON writes the summary as indented JSON.
func WriteJSON(w io.Writer, s Summary) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(s)
}

package report

import (
	"fmt"
	"time"
)

// Gates are the CI bounds a run must meet; zero values are unset.
type Gates struct {
	RequireServed    int // at least this many served; -1 or 0 when unset
	HasRequireServed bool
	ExpectLimit      string // first_limit must equal this; "" when unset
	MaxConnectP99    time.Duration
}

// GateResult is one gate's check, named by its flag.
type GateResult struct {
	Gate   string `json:"gate"`
	Bound  string `json:"bound"`
	Got    string `json:"got"`
	Passed bool   `json:"passed"`
}

// Failed reports whether any gate failed.
func Failed(rs []GateResult) bool {
	for _, r := range rs {
		if !r.Passed {
			return true
		}
	}
	return false
}

// Check evaluates every gate that is set against the summary.
func (g Gates) Check(s Summary) []GateResult {
	out := []GateResult{}
	if g.HasRequireServed {
		served := s.Outcomes["served"]
		out = append(out, GateResult{Gate: "--require-served", Bound: fmt.Sprintf("at least %d served", g.RequireServed),
			Got: fmt.Sprintf("%d served", served), Passed: served >= g.RequireServed})
	}
	if g.ExpectLimit != "" {
		out = append(out, GateResult{Gate: "--expect-limit", Bound: "first_limit " + g.ExpectLimit,
			Got: fmt.Sprintf("first_limit %s at %d", s.FirstLimit, s.FirstLimitAt), Passed: s.FirstLimit == g.ExpectLimit})
	}
	if g.MaxConnectP99 > 0 {
		p99 := time.Duration(s.ConnectLatencyUS.P99) * time.Microsecond
		r := GateResult{Gate: "--max-connect-p99", Bound: "connect p99 at most " + g.MaxConnectP99.String(),
			Got: "connect p99 " + p99.String(), Passed: s.Generator.Connected > 0 && p99 <= g.MaxConnectP99}
		if s.Generator.Connected == 0 {
			r.Got = "no connection completed its handshake"
		}
		out = append(out, r)
	}
	return out
}

// LimitWords lists the verdict words, for validating --expect-limit.
func LimitWords() []string {
	return []string{LimitNone, LimitTargetFD, LimitTargetNotAccepting, LimitAcceptQueueFull, LimitTargetClosed,
		LimitClientFD, LimitSystemFD, LimitEphemeralPorts, LimitRefused, LimitForwarderFD,
		LimitCorruptReply, LimitOtherError, LimitTargetDied, LimitGeneratorDied, LimitConntrackFull, LimitPacketFilter,
		LimitTargetTask, LimitTargetMemory}
}

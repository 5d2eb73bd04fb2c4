package report

import (
	"fmt"
	"io"
	"strings"
)

// maxStepField bounds a figure in the job summary: GitHub takes at most 1
// MiB a step, and a summary must never come near it.
const maxStepField = 400

// WriteStepSummary writes the run as the short Markdown a GitHub Actions
// job summary shows ($GITHUB_STEP_SUMMARY): the verdict, served of
// attempted, the latency percentiles, and each gate. It stays under 8 KiB.
func WriteStepSummary(w io.Writer, s Summary) error {
	b := &strings.Builder{}
	p := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	cell := func(v string) string {
		v = strings.NewReplacer("|", `\|`, "\n", " ", "\r", " ").Replace(v)
		return trunc(v, maxStepField)
	}
	what := "connlimit run"
	if s.Merge != nil {
		what = fmt.Sprintf("connlimit merge of %d shards", s.Merge.Count)
	}
	p("### %s against `%s`\n\n", what, cell(s.TargetAddr))
	if s.FirstLimit == LimitNone {
		p("**first limit: none** — no limit was met\n\n")
	} else {
		p("**first limit: `%s` at %d connections**\n\n", s.FirstLimit, s.FirstLimitAt)
		if s.FirstLimitSetting != "" {
			p("- setting: %s = %s\n- to move it: %s\n\n", cell(s.FirstLimitSetting), cell(s.FirstLimitValue), cell(s.FirstLimitFix))
		}
	}
	if s.Interrupted {
		p("> interrupted after %d of %d attempts\n\n", s.Attempted, s.Requested)
	}
	if s.Error != "" {
		p("> error: %s\n\n", cell(s.Error))
	}
	p("| served | attempted | queued | failed | connect p50 | p90 | p99 | max | rate |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	l := s.ConnectLatencyUS
	failed := s.Attempted - s.Outcomes["served"] - s.Outcomes["queued"]
	p("| %d | %d | %d | %d | %s | %s | %s | %s | %.0f/s |\n\n", s.Outcomes["served"], s.Attempted, s.Outcomes["queued"], failed,
		us(l.P50), us(l.P90), us(l.P99), us(l.Max), s.ConnectRatePerS)
	if len(s.Gates) > 0 {
		p("| gate | wants | got | |\n|---|---|---|---|\n")
		for _, g := range s.Gates {
			mark := "✅ passed"
			if !g.Passed {
				mark = "❌ failed"
			}
			p("| `%s` | %s | %s | %s |\n", g.Gate, cell(g.Bound), cell(g.Got), mark)
		}
		p("\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

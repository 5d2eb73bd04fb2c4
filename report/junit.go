package report

import (
	"encoding/xml"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/connlimit/connlimit/loadgen"
)

// JUnit XML in the dialect Jenkins, GitLab and the GitHub test reporters
// read (the common junit-10 schema): one testsuite for the run, a testcase
// per gate and one for the verdict.
type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name       string          `xml:"name,attr"`
	Tests      int             `xml:"tests,attr"`
	Failures   int             `xml:"failures,attr"`
	Errors     int             `xml:"errors,attr"`
	Skipped    int             `xml:"skipped,attr"`
	Time       string          `xml:"time,attr"`
	Timestamp  string          `xml:"timestamp,attr"`
	Hostname   string          `xml:"hostname,attr"`
	Properties []junitProperty `xml:"properties>property"`
	Cases      []junitCase     `xml:"testcase"`
}

type junitProperty struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Error     *junitProblem `xml:"error"`
	Failure   *junitProblem `xml:"failure"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitProblem struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",chardata"`
}

// WriteJUnit writes the run as JUnit XML. The verdict's testcase has an
// error when the run did not complete (interrupted, or an error); each
// gate's has a failure when it failed, with the gate's line as message.
// The run's figures are the suite's properties. host and at name where
// and when it ran.
func WriteJUnit(w io.Writer, s Summary, host string, at time.Time) error {
	secs := strconv.FormatFloat(s.DurationS, 'f', 3, 64)
	name := "connlimit run " + s.TargetAddr
	if s.Merge != nil {
		name = fmt.Sprintf("connlimit merge of %d shards, %s", s.Merge.Count, s.TargetAddr)
	}
	suite := junitSuite{Name: name, Time: secs, Timestamp: at.UTC().Format("2006-01-02T15:04:05"), Hostname: host}
	prop := func(k string, v any) { suite.Properties = append(suite.Properties, junitProperty{k, fmt.Sprint(v)}) }
	prop("target", s.TargetAddr)
	prop("probe", s.Probe)
	prop("requested", s.Requested)
	prop("attempted", s.Attempted)
	for _, o := range OutcomeNames() {
		prop("outcome."+o, s.Outcomes[o])
	}
	prop("first_limit", s.FirstLimit)
	prop("first_limit_at", s.FirstLimitAt)
	prop("first_limit_setting", s.FirstLimitSetting)
	prop("first_limit_value", s.FirstLimitValue)
	prop("connect_latency_us.p50", s.ConnectLatencyUS.P50)
	prop("connect_latency_us.p99", s.ConnectLatencyUS.P99)
	prop("connect_rate_per_s", strconv.FormatFloat(s.ConnectRatePerS, 'f', 0, 64))

	verdict := junitCase{Name: "first limit: " + s.FirstLimit, Classname: "connlimit.verdict", Time: secs,
		SystemOut: s.VerdictLine() + "\n" + s.FirstLimitFix}
	if s.Interrupted || s.Error != "" {
		msg := s.Error
		if msg == "" {
			msg = "interrupted"
		}
		verdict.Error = &junitProblem{Message: msg, Type: "run", Text: fmt.Sprintf("%d of %d attempts made", s.Attempted, s.Requested)}
		suite.Errors++
	}
	suite.Cases = append(suite.Cases, verdict)
	for _, g := range s.Gates {
		c := junitCase{Name: g.Gate + ": " + g.Bound, Classname: "connlimit.gates", Time: "0", SystemOut: g.Got}
		if !g.Passed {
			c.Failure = &junitProblem{Message: fmt.Sprintf("gate %s failed: want %s, got %s", g.Gate, g.Bound, g.Got), Type: "gate", Text: s.VerdictLine()}
			suite.Failures++
		}
		suite.Cases = append(suite.Cases, c)
	}
	suite.Tests = len(suite.Cases)
	return writeJUnitDoc(w, junitSuites{Name: "connlimit", Tests: suite.Tests, Failures: suite.Failures, Errors: suite.Errors, Time: secs, Suites: []junitSuite{suite}})
}

func writeJUnitDoc(w io.Writer, doc junitSuites) error {
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

// VerdictLine is the first limit in one line, as the text summary starts.
func (s *Summary) VerdictLine() string {
	if s.FirstLimit == LimitNone {
		return fmt.Sprintf("first limit: none (%d of %d served)", s.Outcomes["served"], s.Attempted)
	}
	line := fmt.Sprintf("first limit: %s at %d connections (%d of %d served)", s.FirstLimit, s.FirstLimitAt, s.Outcomes["served"], s.Attempted)
	if s.FirstLimitSetting != "" {
		line += "; " + s.FirstLimitSetting + " = " + s.FirstLimitValue
	}
	return line
}

// OutcomeNames are the outcome words, in the summary's order.
func OutcomeNames() []string {
	var out []string
	for _, o := range loadgen.Outcomes() {
		out = append(out, o.String())
	}
	return out
}

package report

import (
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/push"
)

// PublishConfig says where a finished run's figures go besides its files.
type PublishConfig struct {
	Push        string // a Pushgateway's URL; "" for none
	StepSummary string // a file to append the Markdown summary to ($GITHUB_STEP_SUMMARY); "" for none
	Host        string // the instance label
}

// Publish pushes the run's metrics to a Pushgateway (job connlimit,
// grouped by instance and shard: a shard's push never replaces
// another's) and appends its job summary. It returns one line per
// failure; the run's files are written either way.
func Publish(c PublishConfig, s *Summary, at time.Time) []string {
	var failed []string
	if c.Push != "" {
		// The grouping carries the shard label; the metrics must not.
		err := push.New(c.Push, "connlimit").Grouping("instance", c.Host).Grouping("shard", shardLabel(s)).
			Gatherer(promRegistry(s, at, prometheus.Labels{"target": s.TargetAddr})).Push()
		if err != nil {
			failed = append(failed, fmt.Sprintf("--push %s: not pushed: %v", RedactURL(c.Push), redactErr(err, c.Push)))
		}
	}
	if c.StepSummary != "" {
		f, err := os.OpenFile(c.StepSummary, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err == nil {
			err = WriteStepSummary(f, *s)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			failed = append(failed, fmt.Sprintf("GITHUB_STEP_SUMMARY %s: not written: %v", c.StepSummary, err))
		}
	}
	return failed
}

// RedactURL is a URL with its password hidden: error lines end up in CI logs.
func RedactURL(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Redacted()
	}
	return "the --push URL"
}

// redactErr is err's text with the URL in it redacted.
func redactErr(err error, raw string) string {
	return strings.ReplaceAll(err.Error(), raw, RedactURL(raw))
}

package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/connlimit/connlimit/loadgen"
	"github.com/connlimit/connlimit/report"
)

// startAt waits for the instant every shard starts its ramp, the
// generator's tables grown before it; a shard that arrives late starts at
// once and says by how much.
func startAt(ctx context.Context, gen load, at time.Time) (late time.Duration, err error) {
	if p, ok := gen.(interface{ Prepare() error }); ok {
		if err := p.Prepare(); err != nil {
			return 0, err
		}
	}
	wait := time.Until(at)
	if wait <= 0 {
		return -wait, nil
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return 0, nil
	case <-ctx.Done():
		return 0, context.Cause(ctx)
	}
}

// shardInfo is the shard's part of its summary: its ramp in wall-clock
// time and its latencies as a histogram merge can add up exactly.
func shardInfo(cfg *Config, sum *report.Summary, began, epoch, holdEnd time.Time, a loadgen.Attempts, late time.Duration) *report.ShardInfo {
	sh := cfg.Shard
	info := &report.ShardInfo{Run: sh.Run, Index: sh.Index, Count: sh.Count, Host: sh.Host,
		TotalConnections: sh.TotalConnections, TotalRate: sh.TotalRate, LateS: late.Seconds(),
		Began: report.FormatTime(began), IntervalS: cfg.Interval.Seconds(), HoldEnd: report.FormatTime(holdEnd)}
	if cfg.Timeline != "" {
		info.Timeline = filepath.Base(cfg.Timeline)
	}
	if !sh.StartAt.IsZero() {
		info.StartAt = report.FormatTime(sh.StartAt)
	}
	info.ConnectLatencyHDR, _ = report.EncodeHist(sum.LatencyHistogram()) // Build's, of the same attempts
	if cfg.CSV != "" {
		info.CSV, info.CSVRows = filepath.Base(cfg.CSV), len(a.Results)
	}
	if len(a.Results) == 0 {
		return info // no ramp: it takes no part in the merged one
	}
	var first, last time.Duration = -1, 0
	for i := range a.Results {
		r := &a.Results[i]
		if first < 0 || r.Start < first {
			first = r.Start
		}
		if r.Connect > 0 {
			last = max(last, r.Start+r.Connect)
		}
	}
	first = max(first, 0)
	last = max(last, first)
	info.RampStart, info.RampEnd = report.FormatTime(epoch.Add(first)), report.FormatTime(epoch.Add(last))
	return info
}

// shardLine is --shard-out -: the summary as the last line of stdout.
func shardLine(cfg *Config, stdout io.Writer, sum report.Summary) error {
	if cfg.ShardOut != "-" {
		return nil
	}
	if err := report.WriteJSONLine(stdout, sum); err != nil {
		return fmt.Errorf("--shard-out -: not written: %w", err)
	}
	return nil
}

// emptyShard is a shard whose share is no connection (more shards than
// connections): a summary with nothing in it, the target left alone.
func emptyShard(cfg *Config, env Env) error {
	outs, err := openOutputs(cfg, env.Temps)
	if err != nil {
		return err
	}
	defer outs.abort()
	sum := report.Build(report.Input{GeneratorID: os.Getpid(), Probe: cfg.Probe, Gates: cfg.Gates})
	sum.TargetAddr = cfg.Target
	now := time.Now()
	sum.Shard = shardInfo(cfg, &sum, now, now, now, loadgen.Attempts{}, 0)
	return errors.Join(report.WriteText(env.Stdout, sum), writeReports(cfg, outs, sum, nil, loadgen.Attempts{}, nil), shardLine(cfg, env.Stdout, sum))
}

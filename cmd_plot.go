package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/pflag"

	"github.com/connlimit/connlimit/report"
)

// runPlot redraws a saved timeline: connlimit plot TIMELINE.csv -o FILE.
func runPlot(args []string, stdout io.Writer) error {
	fs := pflag.NewFlagSet("plot", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	out := fs.StringP("output", "o", "", "the chart to write: a file name ending in .svg or .png")
	summary := fs.String("summary", "", "the run's --json summary, for the verdict in the title and the marker labels")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			fmt.Fprint(stdout, "Usage: connlimit plot TIMELINE.csv -o FILE.svg|FILE.png [--summary SUMMARY.json]\n\n", fs.FlagUsages())
			return errHelp
		}
		return flagError(err, "plot", nil)
	}
	if err := noEmptyValues(fs, "tls-server-name", "namespace"); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageErr("plot takes one timeline CSV (written by connlimit run --timeline), got %d arguments", fs.NArg())
	}
	if *out == "" {
		return usageErr("--output: missing; want a file name ending in .svg or .png")
	}
	format, err := report.PlotFormat(*out)
	if err != nil {
		return usageErr("--output: %v", err)
	}
	path := fs.Arg(0)
	f, err := os.Open(path)
	if err != nil {
		return usageErr("%v: want a timeline CSV written by connlimit run --timeline", err)
	}
	defer f.Close()
	pts, err := report.ReadTimeline(f)
	if err != nil {
		return usageErr("%s: %v", path, err)
	}
	chart := report.Chart{Title: "connlimit run (" + path + ")"}
	if *summary != "" {
		b, err := readBounded(*summary, maxSummaryBytes)
		if err != nil {
			return usageErr("--summary: %v", err)
		}
		var sum report.Summary
		if err := json.Unmarshal(b, &sum); err != nil {
			return usageErr("--summary %s: not a connlimit JSON summary: %v", *summary, err)
		}
		if sum.SchemaVersion == 0 || sum.FirstLimit == "" {
			return usageErr("--summary %s: not a connlimit JSON summary: no schema_version or first_limit; want the file run --json wrote", *summary)
		}
		chart = report.ChartOf(sum)
	}
	o, err := report.CreateOutput(*out, nil)
	if err != nil {
		return usageErr("--output: %v; want a path in a writable directory", err)
	}
	defer o.Abort() // after Commit this does nothing harmful
	if err := report.WritePlot(o, format, pts, chart); err != nil {
		return runtimeErr(err)
	}
	if err := o.Commit(); err != nil {
		return runtimeErr(err)
	}
	return nil
}

// maxSummaryBytes bounds --summary: a run's JSON summary holds no
// per-attempt data and stays far below it.
const maxSummaryBytes = 16 << 20

// readBounded reads a file of at most max bytes.
func readBounded(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err == nil && int64(len(b)) > max {
		err = fmt.Errorf("%s: more than %d bytes: not a connlimit JSON summary", path, max)
	}
	return b, err
}

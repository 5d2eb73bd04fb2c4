package main

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/connlimit/connlimit/engine"
	"github.com/connlimit/connlimit/report"
)

var mergeRanges = map[string]string{
	"json":            "a file path",
	"csv":             "a file path",
	"timeline":        "a file path",
	"plot":            "a file name ending in .svg or .png",
	"junit":           "a file path",
	"prom":            "a file path",
	"push":            "an http or https URL of a Pushgateway's base, such as http://127.0.0.1:9091 (connlimit adds /metrics/job/connlimit/...)",
	"require-served":  "an integer from 0 up",
	"expect-limit":    strings.Join(report.LimitWords(), ", "),
	"max-connect-p99": "a duration above 0, such as 50ms",
}

const mergeUsage = `Usage: connlimit merge SHARD.json... [flags]
       kubectl logs -l job-name=JOB | connlimit merge - [flags]

Merges the summaries of the shards of one run (run --shard I/S, or --shards S
in a Kubernetes Indexed Job) into the report one run would have written:
counts summed, the rate over the union of the ramps, percentiles from the
merged histograms, the verdict from the target's side. A missing, duplicate
or foreign shard is named, with exit status 3.

Flags:
`

func runMerge(args []string, stdin io.Reader, stdout io.Writer, env runEnv) error {
	fs := pflag.NewFlagSet("merge", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	jsonPath := fs.String("json", "", "write the merged summary as JSON to FILE")
	csvPath := fs.String("csv", "", "write every shard's CSV rows to FILE, with a shard column (each shard's --csv is read beside its JSON)")
	timelinePath := fs.String("timeline", "", "write the shards' timelines on one clock to FILE (each shard's --timeline is read beside its JSON)")
	plotPath := fs.String("plot", "", "draw the merged timeline to FILE (.svg or .png)")
	junitPath := fs.String("junit", "", "write the merged run as JUnit XML to FILE: a testcase for the verdict and one per gate")
	promPath := fs.String("prom", "", "write the merged figures in the Prometheus text format to FILE")
	pushURL := fs.String("push", "", "push the merged figures to this Pushgateway URL (job connlimit, shard all)")
	requireServed := fs.Int("require-served", 0, "CI gate: exit 1 if fewer connections were served in all")
	expectLimit := fs.String("expect-limit", "", "CI gate: exit 1 unless the merged first_limit is this verdict")
	maxP99 := fs.Duration("max-connect-p99", 0, "CI gate: exit 1 if the merged connect latency p99 is above this")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			fmt.Fprint(stdout, mergeUsage+fs.FlagUsages())
			return errHelp
		}
		return flagError(err, "merge", mergeRanges)
	}
	if err := noEmptyValues(fs, "tls-server-name", "namespace"); err != nil {
		return err
	}
	switch {
	case fs.NArg() == 0:
		return usageErr("merge: want the shards' summaries: SHARD.json... or - for stdin (kubectl logs)")
	case *requireServed < 0:
		return usageErr("--require-served %d: want %s", *requireServed, mergeRanges["require-served"])
	case *expectLimit != "" && !slices.Contains(report.LimitWords(), *expectLimit):
		return usageErr("--expect-limit %q: want %s", *expectLimit, mergeRanges["expect-limit"])
	case fs.Changed("max-connect-p99") && *maxP99 <= 0:
		return usageErr("--max-connect-p99 %s: want %s", *maxP99, mergeRanges["max-connect-p99"])
	}
	if *plotPath != "" {
		if _, err := report.PlotFormat(*plotPath); err != nil {
			return usageErr("--plot: %v", err)
		}
	}
	if *pushURL != "" && !validPushURL(*pushURL) {
		return usageErr("--push %q: want %s", report.RedactURL(*pushURL), mergeRanges["push"])
	}
	var shards []report.Summary
	var names, dirs []string
	for _, a := range fs.Args() {
		var r io.Reader = stdin
		dir := "."
		if a != "-" {
			f, err := os.Open(a)
			if err != nil {
				return runtimeErr(fmt.Errorf("merge: %w", err))
			}
			defer f.Close()
			r, dir = f, filepath.Dir(a)
		}
		ss, ns, err := readShards(r, a)
		if err != nil {
			return runtimeErr(err)
		}
		shards, names = append(shards, ss...), append(names, ns...)
		for range ss {
			dirs = append(dirs, dir)
		}
	}
	sum, err := report.Merge(shards, names)
	if err != nil {
		return runtimeErr(err)
	}
	gates := report.Gates{RequireServed: *requireServed, HasRequireServed: fs.Changed("require-served"), ExpectLimit: *expectLimit, MaxConnectP99: *maxP99}
	sum.Gates = gates.Check(sum)
	// Every input is read and checked before a file is written: bad input
	// leaves no partial report.
	var csvs, timelines []shardFile
	if *csvPath != "" {
		if csvs, err = shardFiles(shards, names, dirs, "csv", func(s *report.ShardInfo) (string, int) { return s.CSV, s.CSVRows }); err != nil {
			return runtimeErr(err)
		}
	}
	var timeline []byte
	if *timelinePath != "" || *plotPath != "" {
		if timelines, err = shardFiles(shards, names, dirs, "timeline", func(s *report.ShardInfo) (string, int) { return s.Timeline, 0 }); err != nil {
			return runtimeErr(err)
		}
		if timeline, err = mergeTimelines(shards, timelines); err != nil {
			return runtimeErr(err)
		}
	}
	if err := report.WriteText(stdout, sum); err != nil {
		return err
	}
	now := time.Now()
	host, _ := os.Hostname()
	for _, o := range []struct {
		flag, path string
		fill       func(io.Writer) error
	}{
		{"json", *jsonPath, func(w io.Writer) error { return report.WriteJSON(w, sum) }},
		{"csv", *csvPath, func(w io.Writer) error { return mergeCSV(w, csvs) }},
		{"timeline", *timelinePath, func(w io.Writer) error { _, err := w.Write(timeline); return err }},
		{"plot", *plotPath, func(w io.Writer) error {
			pts, err := report.ReadTimeline(bytes.NewReader(timeline))
			if err != nil {
				return err
			}
			format, _ := report.PlotFormat(*plotPath)
			return report.WritePlot(w, format, pts, report.ChartOf(sum))
		}},
		{"junit", *junitPath, func(w io.Writer) error { return report.WriteJUnit(w, sum, host, now) }},
		{"prom", *promPath, func(w io.Writer) error { return report.WriteProm(w, report.NewPromRegistry(&sum, now)) }},
	} {
		if o.path == "" {
			continue
		}
		if err := writeOutput(o.path, env.temps, o.fill); err != nil {
			return runtimeErr(fmt.Errorf("--%s %s: %w", o.flag, o.path, err))
		}
	}
	if failed := report.Publish(report.PublishConfig{Push: *pushURL, StepSummary: os.Getenv("GITHUB_STEP_SUMMARY"), Host: host}, &sum, now); len(failed) > 0 {
		return runtimeErr(errors.New(strings.Join(failed, "\nconnlimit: ")))
	}
	if report.Failed(sum.Gates) {
		return &engine.GateError{Gates: sum.Gates}
	}
	return nil
}

// readShards reads one input: a summary as --json writes it, or lines of
// output (kubectl logs of every pod) whose JSON lines with a "shard" key
// are shards' summaries, the rest skipped.
func readShards(r io.Reader, name string) ([]report.Summary, []string, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxMergeInput+1))
	if err != nil {
		return nil, nil, fmt.Errorf("merge %s: %w", name, err)
	}
	if len(b) > maxMergeInput {
		return nil, nil, fmt.Errorf("merge %s: more than %d MiB: not shards' summaries or their logs", name, maxMergeInput>>20)
	}
	var one report.Summary
	if err := json.Unmarshal(b, &one); err == nil {
		return []report.Summary{one}, []string{name}, nil
	}
	var out []report.Summary
	var names []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		// A summary's line starts with its version (a cut one may have
		// lost its shard key); other JSON lines must name a shard.
		if len(line) == 0 || line[0] != '{' || !(bytes.HasPrefix(line, []byte(`{"schema_version":`)) || bytes.Contains(line, []byte(`"shard":`))) {
			continue
		}
		var s report.Summary
		if err := json.Unmarshal(line, &s); err != nil {
			return nil, nil, fmt.Errorf("merge %s line %d: %w (a shard's line cut short?)", name, n, err)
		}
		out, names = append(out, s), append(names, fmt.Sprintf("%s line %d", name, n))
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("merge %s: %w", name, err)
	}
	if len(out) == 0 {
		return nil, nil, fmt.Errorf("merge %s: no shard summary in it (want run --shard ... --json FILE, or --shard-out - lines)", name)
	}
	return out, names, nil
}

// maxMergeInput bounds one input of merge (merge /dev/zero must fail, not
// fill the memory): a shard's summary is a few KiB, so this is the logs of
// thousands of pods.
const maxMergeInput = 64 << 20

// shardFile is one shard's CSV or timeline, and the rows its summary says
// it has (0: not counted).
type shardFile struct {
	path string
	rows int
}

// shardFiles finds each shard's file of a kind, in shard order, beside its
// summary, by the name the summary records.
func shardFiles(shards []report.Summary, names, dirs []string, kind string, of func(*report.ShardInfo) (string, int)) ([]shardFile, error) {
	out := make([]shardFile, len(shards))
	for i, s := range shards {
		name, rows := of(s.Shard)
		if name == "" {
			return nil, fmt.Errorf("--%s: %s wrote no %s (run each shard with --%s)", kind, names[i], kind, kind)
		}
		// The name comes from the input: a file beside it, never a path
		// that would read another file into the merged report.
		if name != filepath.Base(name) || name == "." || name == ".." {
			return nil, fmt.Errorf("--%s: %s names its %s %q: want a file name, no directory", kind, names[i], kind, name)
		}
		p := filepath.Join(dirs[i], name)
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("--%s: shard %d's %s: %w", kind, s.Shard.Index, kind, err)
		}
		out[s.Shard.Index] = shardFile{p, rows}
	}
	return out, nil
}

// mergeTimelines puts the shards' timelines on one clock, in memory: a
// timeline has a row per --interval, not per connection.
func mergeTimelines(shards []report.Summary, files []shardFile) ([]byte, error) {
	in := make([]report.ShardTimeline, len(files))
	var interval time.Duration
	for _, s := range shards {
		began, err := time.Parse(time.RFC3339Nano, s.Shard.Began)
		if err != nil {
			return nil, fmt.Errorf("--timeline: shard %d: began %q: want an RFC 3339 time", s.Shard.Index, s.Shard.Began)
		}
		f, err := os.Open(files[s.Shard.Index].path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		in[s.Shard.Index] = report.ShardTimeline{Name: files[s.Shard.Index].path, Began: began, R: f}
		if d := time.Duration(s.Shard.IntervalS * float64(time.Second)); interval == 0 || d < interval {
			interval = d
		}
	}
	var b bytes.Buffer
	if err := report.MergeTimelines(&b, in, interval); err != nil {
		return nil, fmt.Errorf("--timeline: %w", err)
	}
	return b.Bytes(), nil
}

// mergeCSV streams the shards' CSVs into one, a shard column last; a CSV
// whose header differs from the first, or cut short, is an error.
func mergeCSV(w io.Writer, csvs []shardFile) error {
	cw := csv.NewWriter(w)
	var header []string
	for i, sc := range csvs {
		p := sc.path
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		cr := csv.NewReader(bufio.NewReaderSize(report.LineLimit(f, report.MaxTimelineLine), 1<<16))
		cr.ReuseRecord = true
		h, err := cr.Read()
		if err != nil {
			f.Close()
			return fmt.Errorf("%s: %w", p, err)
		}
		if header == nil {
			header = append(slices.Clone(h), "shard")
			if err := cw.Write(header); err != nil {
				f.Close()
				return err
			}
		} else if !slices.Equal(h, header[:len(header)-1]) {
			f.Close()
			return fmt.Errorf("%s: its columns differ from the first shard's", p)
		}
		idx := strconv.Itoa(i)
		for n := 0; ; n++ {
			rec, err := cr.Read()
			if err == io.EOF {
				if n != sc.rows {
					f.Close()
					return fmt.Errorf("%s: %d rows, its shard's summary says %d: another run's CSV, or cut short", p, n, sc.rows)
				}
				break
			}
			if err != nil {
				f.Close()
				return fmt.Errorf("%s: %w", p, err)
			}
			if err := cw.Write(append(rec, idx)); err != nil {
				f.Close()
				return err
			}
		}
		f.Close()
	}
	cw.Flush()
	return cw.Error()
}

// writeOutput writes a report file atomically.
func writeOutput(path string, temps *report.Temps, fill func(io.Writer) error) error {
	o, err := report.CreateOutput(path, temps)
	if err != nil {
		return err
	}
	if err := fill(o); err != nil {
		o.Abort()
		return err
	}
	return o.Commit()
}

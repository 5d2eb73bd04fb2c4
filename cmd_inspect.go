package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/connlimit/connlimit/engine"
	"github.com/connlimit/connlimit/report"
)

var inspectRanges = map[string]string{
	"pid":              "the PID of a running process (repeatable)",
	"watch":            "a duration from 1s to 24h, such as 30s",
	"json":             "a file path, or - for stdout",
	"require-headroom": "an integer from 1 to 1000000000",
	"junit":            "a file path",
	"prom":             "a file path",
}

const inspectUsage = `Usage: connlimit inspect HOST:PORT [flags]
       connlimit inspect --pid PID [flags]

Reads a running server's headroom without sending it a packet: the processes
behind its listener (descriptors by kind against RLIMIT_NOFILE, tasks, cgroup),
the listener's queue, the machine's limits, and the nearest limit with how many
more connections fit before it.

Flags:
`

func runInspect(ctx context.Context, args []string, stdout, stderr io.Writer, env runEnv) error {
	fs := pflag.NewFlagSet("inspect", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	pids := fs.IntSlice("pid", nil, "a process to read (repeatable); default: the processes holding the listener")
	watch := fs.Duration("watch", 0, "refresh every second for this long, with the rate at which headroom shrinks")
	jsonPath := fs.String("json", "", "write the inspection as JSON to FILE (- for stdout)")
	junitPath := fs.String("junit", "", "write the inspection as JUnit XML to FILE: the nearest limit, and --require-headroom per process")
	promPath := fs.String("prom", "", "write the headroom in the Prometheus text format to FILE (for node_exporter's textfile collector)")
	require := fs.Int64("require-headroom", 0, "exit 1 when a process behind the port has fewer than N connections of headroom")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			fmt.Fprint(stdout, inspectUsage+fs.FlagUsages())
			return errHelp
		}
		return flagError(err, "inspect", inspectRanges)
	}
	if err := noEmptyValues(fs, "tls-server-name", "namespace"); err != nil {
		return err
	}
	var addr netip.AddrPort
	switch {
	case fs.NArg() > 1:
		return usageErr("inspect takes one HOST:PORT, got %q", fs.Args())
	case fs.NArg() == 1:
		a, err := resolveHostPort(ctx, fs.Arg(0))
		if err != nil {
			return usageErr("inspect %s: %v; want HOST:PORT of a listener on this machine, such as 127.0.0.1:8080", fs.Arg(0), err)
		}
		addr = a
	case len(*pids) == 0:
		return usageErr("inspect: want HOST:PORT or --pid PID")
	}
	for _, p := range *pids {
		if p < 1 {
			return usageErr("--pid %d: want %s", p, inspectRanges["pid"])
		}
	}
	switch {
	case fs.Changed("watch") && (*watch < time.Second || *watch > 24*time.Hour):
		return usageErr("--watch %s: want %s", *watch, inspectRanges["watch"])
	case fs.Changed("require-headroom") && (*require < 1 || *require > 1e9):
		return usageErr("--require-headroom %d: want %s", *require, inspectRanges["require-headroom"])
	}
	cfg := engine.InspectConfig{Addr: addr, PIDs: *pids, ProcRoot: env.procRoot}
	in, err := engine.Inspect(cfg)
	if err != nil {
		return runtimeErr(err)
	}
	// With --json - stdout is the JSON alone: a watch's lines go to stderr.
	text := stdout
	if *jsonPath == "-" {
		text = stderr
	}
	// A watch stopped by Ctrl-C still writes its last reading, then exits 130.
	var stopped error
	if *watch > 0 {
		if in, stopped = watchInspect(ctx, cfg, in, *watch, text); stopped != nil && ctx.Err() == nil {
			return stopped
		}
	} else if *jsonPath != "-" {
		if err := report.WriteInspectText(stdout, in); err != nil {
			return err
		}
	}
	if *jsonPath != "" {
		if err := writeInspectJSON(*jsonPath, in, stdout, env.temps); err != nil {
			return runtimeErr(err)
		}
	}
	now := time.Now()
	host, _ := os.Hostname()
	if *junitPath != "" {
		if err := writeOutput(*junitPath, env.temps, func(w io.Writer) error { return report.WriteInspectJUnit(w, in, *require, host, now) }); err != nil {
			return runtimeErr(fmt.Errorf("--junit %s: %w", *junitPath, err))
		}
	}
	if *promPath != "" {
		if err := writeOutput(*promPath, env.temps, func(w io.Writer) error { return report.WriteProm(w, report.NewInspectPromRegistry(in, now)) }); err != nil {
			return runtimeErr(fmt.Errorf("--prom %s: %w", *promPath, err))
		}
	}
	if stopped != nil {
		return stopped
	}
	if *require > 0 {
		for _, p := range in.Processes {
			if p.Headroom >= 0 && p.Headroom < *require {
				return &engine.GateError{Gates: []report.GateResult{{Gate: "--require-headroom", Bound: fmt.Sprintf("at least %d connections of headroom", *require),
					Got: fmt.Sprintf("%d for pid %d (%s)", p.Headroom, p.PID, p.HeadroomBy)}}}
			}
		}
	}
	return nil
}

// resolveHostPort reads HOST:PORT with a name resolved to its first address.
func resolveHostPort(ctx context.Context, s string) (netip.AddrPort, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return netip.AddrPort{}, err
	}
	pn, err := net.LookupPort("tcp", port)
	if err != nil || pn == 0 {
		return netip.AddrPort{}, fmt.Errorf("port %q: want 1 to 65535", port)
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil || len(ips) == 0 {
		return netip.AddrPort{}, fmt.Errorf("cannot resolve %q", host)
	}
	return netip.AddrPortFrom(ips[0].Unmap(), uint16(pn)), nil
}

// watchInspect refreshes every second until d has passed or ctx ends: in
// place on a terminal, a line per reading otherwise, with the rate at which
// the nearest headroom shrinks and when it would reach zero at that rate.
func watchInspect(ctx context.Context, cfg engine.InspectConfig, first *report.Inspection, d time.Duration, w io.Writer) (*report.Inspection, error) {
	tty := false
	if f, ok := w.(*os.File); ok {
		tty = term.IsTerminal(int(f.Fd()))
	}
	start := time.Now()
	prev, prevAt := first, start
	t := time.NewTicker(time.Second)
	defer t.Stop()
	show := func(in *report.Inspection, trend string) error {
		if tty {
			fmt.Fprint(w, "\x1b[H\x1b[2J")
			if err := report.WriteInspectText(w, in); err != nil {
				return err
			}
			_, err := fmt.Fprintf(w, "\n%s (watching for %s; Ctrl-C stops)\n", trend, d)
			return err
		}
		_, err := fmt.Fprintf(w, "%s %s; %s\n", time.Now().Format("15:04:05"), in.VerdictLine(), trend)
		return err
	}
	if err := show(first, "trend: first reading"); err != nil {
		return first, err
	}
	for {
		select {
		case <-ctx.Done():
			return prev, context.Cause(ctx)
		case now := <-t.C:
			in, err := engine.Inspect(cfg)
			if err != nil {
				return prev, runtimeErr(err)
			}
			if err := show(in, trend(prev, in, now.Sub(prevAt))); err != nil {
				return in, err
			}
			prev, prevAt = in, now
			if now.Sub(start) >= d {
				return in, nil
			}
		}
	}
}

// trend is how fast the nearest headroom moves, and when it would be gone.
func trend(prev, now *report.Inspection, dt time.Duration) string {
	if prev.Headroom == nil || now.Headroom == nil || dt <= 0 {
		return "trend: unknown"
	}
	rate := float64(prev.Headroom.Connections-now.Headroom.Connections) / dt.Seconds()
	switch {
	case rate > 0:
		eta := time.Duration(float64(now.Headroom.Connections) / rate * float64(time.Second)).Round(time.Second)
		return fmt.Sprintf("headroom shrinking %.0f/s: zero in %s at this rate", rate, eta)
	case rate < 0:
		return fmt.Sprintf("headroom growing %.0f/s", -rate)
	}
	return "headroom steady"
}

func writeInspectJSON(path string, in *report.Inspection, stdout io.Writer, temps *report.Temps) error {
	write := func(w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(in)
	}
	if path == "-" {
		return write(stdout)
	}
	return writeOutput(path, temps, write)
}

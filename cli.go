package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"syscall"

	"github.com/connlimit/connlimit/engine"
	"github.com/connlimit/connlimit/worker"
	"github.com/spf13/pflag"
)

// Exit codes; documented in usage and README.
const (
	exitOK      = 0
	exitGate    = 1
	exitUsage   = 2
	exitRuntime = 3
)

const usageText = `connlimit finds, shows and explains where a TCP server stops taking connections.

Usage:
  connlimit [run] [flags]      open connections to a built-in target (or --target HOST:PORT) and say where they stop
  connlimit inspect HOST:PORT  a running server's headroom, read without sending it a packet
  connlimit merge SHARD.json... | -   one report from the shards of a run (run --shard I/S)
  connlimit k8s --shards S --image IMAGE --target HOST:PORT [run flags]   the Indexed Job that runs them
  connlimit limits             show the limits that decide how many connections fit, and what they mean
  connlimit plot TIMELINE.csv -o FILE.svg|.png   redraw a run from its saved --timeline
  connlimit target [flags]     run the built-in target by hand (run starts it for you)
  connlimit forward --to HOST:PORT [flags]   a TCP port forwarder with its own RLIMIT_NOFILE
  connlimit help [command]

Exit status:
  0    the run completed (finding the limit is the job, not a failure) and every gate passed
  1    a CI gate failed (--require-served, --expect-limit, --max-connect-p99, inspect's
       --require-headroom): one line per gate
  2    bad usage: a flag or argument was wrong; nothing was run or written
  3    environment or runtime failure: the hard limit is too low for the run, the target or a
       generator process died, a report file could not be written, stdout's reader went away
       (the report files are still written), merge's shards missing, duplicated or from
       another run, ...
  130  interrupted by SIGINT (143: SIGTERM, 129: SIGHUP); the report was still written
       (a second signal exits at once: no report, no temporary files left)

Run 'connlimit help run' for the run flags.
`

// exitError carries an exit status with its cause.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageErr(format string, a ...any) error {
	return &exitError{exitUsage, fmt.Errorf(format, a...)}
}

func runtimeErr(err error) error { return &exitError{exitRuntime, err} }

// signalError is the cancellation cause when a signal stops a run.
type signalError struct{ sig syscall.Signal }

func (e *signalError) Error() string { return "interrupted by " + e.sig.String() }

// noEmptyValues refuses a string flag given as "": almost always a shell
// variable that was not set (--csv "$OUT", --target "$HOST"), and taking it as
// the flag's default would quietly write no report, or test the built-in
// target instead of the server meant. Flags whose empty value means
// something (--tls-server-name "": send no name) are listed in allowed.
func noEmptyValues(fs *pflag.FlagSet, allowed ...string) error {
	var err error
	fs.Visit(func(f *pflag.Flag) {
		if err == nil && f.Value.Type() == "string" && f.Value.String() == "" && !slices.Contains(allowed, f.Name) {
			err = usageErr("--%s \"\": empty (an unset shell variable?); want a value for it (%s), or drop --%s", f.Name, f.Usage, f.Name)
		}
	})
	return err
}

// errHelp means help was printed as asked: exit 0, print nothing more.
var errHelp = errors.New("help shown")

// errReported means a child already printed the outcome; only its exit status remains.
var errReported = errors.New("reported by the child run")

func isSilent(err error) bool { return errors.Is(err, errHelp) || errors.Is(err, errReported) }

func exitCode(err error) int {
	var ee *exitError
	var se *signalError
	var ue *engine.UsageError
	var ge *engine.GateError
	switch {
	case err == nil, errors.Is(err, errHelp):
		return exitOK
	case errors.As(err, &se):
		return 128 + int(se.sig)
	case errors.As(err, &ee):
		return ee.code
	case errors.As(err, &ge):
		return exitGate
	case errors.As(err, &ue), errors.Is(err, worker.ErrUsage):
		return exitUsage
	default:
		return exitRuntime
	}
}

// run dispatches to a subcommand; with no subcommand it runs "run".
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runWith(ctx, args, stdout, stderr, runEnv{})
}

// runWith is run with parts of its environment given (main's temporary-file
// set, tests' binaries).
func runWith(ctx context.Context, args []string, stdout, stderr io.Writer, env runEnv) error {
	cmd := "run"
	if len(args) > 0 && (len(args[0]) == 0 || args[0][0] != '-') {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "run":
		return runRun(ctx, args, stdout, stderr, env)
	case "plot":
		return runPlot(args, stdout)
	case "limits":
		return runLimits(ctx, args, stdout)
	case "merge":
		return runMerge(args, os.Stdin, stdout, env)
	case "k8s":
		return runK8s(args, stdout)
	case "inspect":
		return runInspect(ctx, args, stdout, stderr, env)
	case "worker": // internal: one generator process of run --procs N
		return worker.Serve(ctx, args, os.Stdin)
	case "target", "forward":
		return runTarget(ctx, cmd, args, stdout, stderr)
	case "help":
		if len(args) > 0 {
			return runWith(ctx, []string{args[0], "--help"}, stdout, stderr, env)
		}
		fmt.Fprint(stdout, usageText)
		return nil
	default:
		return usageErr("unknown command %q: want run, inspect, merge, k8s, limits, plot, target, forward or help", cmd)
	}
}

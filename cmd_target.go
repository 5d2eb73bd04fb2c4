package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/spf13/pflag"

	"github.com/connlimit/connlimit/internal/shm"
	"github.com/connlimit/connlimit/internal/sockaddr"
	"github.com/connlimit/connlimit/limits"
	"github.com/connlimit/connlimit/target"
)

var targetRanges = withBehaviorRanges(map[string]string{
	"nofile":         fmt.Sprintf("an integer from %d to the hard RLIMIT_NOFILE", target.MinNoFile),
	"events-fd":      "an open descriptor number from 1 to 1023 (1 = stdout)",
	"stats-interval": "a duration from 10ms to 1m",
	"counters-fd":    "an open descriptor number from 3 to 1023, a memfd of at least 4096 bytes",
	"listen":         "host:port on loopback, such as 127.0.0.1:0 (an empty host is 127.0.0.1; another address needs --allow-remote)",
	"to":             "the fixed HOST:PORT every connection is forwarded to, on loopback unless --allow-remote, such as 127.0.0.1:8080",
})

// runTarget runs the built-in target in this process until a signal. Run
// starts it as a child; people can also start it by hand and aim other tools
// at it. Its events go to --events-fd as JSON lines, its log to stderr.
//
// connlimit forward is the same server as a port forwarder: each accepted
// connection is joined to a new one to --to, fixed at start (never an open
// proxy), so it costs two descriptors.
func runTarget(ctx context.Context, cmd string, args []string, stdout, stderr io.Writer) error {
	fs := pflag.NewFlagSet(cmd, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.SortFlags = false
	listen := fs.String("listen", "127.0.0.1:0", "listen address")
	nofile := fs.Uint64("nofile", target.DefaultNoFile, "soft RLIMIT_NOFILE, set before anything is opened")
	eventsFd := fs.Int("events-fd", 1, "descriptor that receives the JSON-lines event stream")
	interval := fs.Duration("stats-interval", target.DefaultStatsInterval, "how often to report counters")
	countersFd := fs.Int("counters-fd", 0, "keep the counters in this shared block instead of reporting them (run passes it)")
	var to string
	if cmd == "forward" {
		fs.StringVar(&to, "to", "", "HOST:PORT to forward every connection to (required)")
	}
	var bf behaviorFlags
	bf.register(fs)
	allowRemote := fs.Bool("allow-remote", false, "let --listen (and forward's --to) name an address that is not loopback: a forwarder listening on every interface is an open relay")
	silent := fs.Bool("silent", false, "send no greeting: accept and hold (run passes it with --probe connect)")
	var quietClose bool
	if cmd == "target" {
		// Not for a forwarder: its peers on both sides are not all connlimit's.
		fs.BoolVar(&quietClose, "quiet-close", false, "close the held connections at exit in TCP repair mode, sending nothing (CAP_NET_ADMIN; only for clients that close theirs the same way, as run's generator does)")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			fmt.Fprintf(stdout, "Usage: connlimit %s [flags]\n\n%s", cmd, fs.FlagUsages())
			return errHelp
		}
		return flagError(err, cmd, targetRanges)
	}
	if err := noEmptyValues(fs, "tls-server-name", "namespace"); err != nil {
		return err
	}
	if cmd == "forward" {
		if err := checkHostPort(to, "to", *allowRemote, targetRanges["to"]); err != nil {
			return err
		}
	}
	host, port, err := net.SplitHostPort(*listen)
	if err != nil {
		return usageErr("--listen: %q: %v; want %s", *listen, err, targetRanges["listen"])
	}
	if err := checkPort(*listen, "listen", port, true, targetRanges["listen"]); err != nil {
		return err
	}
	if host == "" && !*allowRemote {
		*listen = net.JoinHostPort("127.0.0.1", port) // ":0" binds every interface otherwise
	}
	if host != "" {
		if err := checkHostPort(*listen, "listen", *allowRemote, targetRanges["listen"]); err != nil {
			return err
		}
	}
	switch {
	case fs.NArg() > 0:
		return usageErr("%s takes no arguments, got %q", cmd, fs.Args())
	case *nofile < target.MinNoFile:
		return usageErr("--nofile %d: want %s", *nofile, targetRanges["nofile"])
	case aboveNrOpen(*nofile):
		return usageErr("--nofile %d: is above fs.nr_open, the most any hard limit can be; want %s", *nofile, targetRanges["nofile"])
	case *eventsFd < 1 || *eventsFd > 1023:
		return usageErr("--events-fd %d: want %s", *eventsFd, targetRanges["events-fd"])
	case *interval < 10*time.Millisecond || *interval > time.Minute:
		return usageErr("--stats-interval %v: want %s", *interval, targetRanges["stats-interval"])
	}
	behavior, err := bf.behavior()
	if err != nil {
		return err
	}
	behavior.Silent, behavior.QuietClose = *silent, quietClose
	var counters *target.Counters
	if *countersFd != 0 {
		if *countersFd < 3 || *countersFd > 1023 {
			return usageErr("--counters-fd %d: want %s", *countersFd, targetRanges["counters-fd"])
		}
		mem, err := shm.Inherit(*countersFd, target.CountersBlockSize)
		if err != nil {
			return usageErr("--counters-fd: %v; want %s", err, targetRanges["counters-fd"])
		}
		defer shm.Unmap(mem)
		counters = shm.At[target.Counters](mem)
	}
	events := stdout
	if *eventsFd != 1 {
		f := os.NewFile(uintptr(*eventsFd), "events")
		if f == nil {
			return usageErr("--events-fd: %d is not open; want %s", *eventsFd, targetRanges["events-fd"])
		}
		defer f.Close()
		events = f
	}
	err = target.Serve(ctx, target.Config{Addr: *listen, NoFile: *nofile, StatsInterval: *interval,
		Events: events, EventsFd: *eventsFd, Log: stderr, Behavior: behavior, ForwardTo: to, Counters: counters})
	if err != nil {
		return runtimeErr(err)
	}
	return nil
}

// checkHostPort refuses HOST:PORT that is malformed, or (without
// allowRemote) not a loopback address: a load tester's servers and
// forwarders stay on this machine unless told otherwise.
func checkHostPort(hp, flag string, allowRemote bool, want string) error {
	_, port, err := net.SplitHostPort(hp)
	if err != nil {
		return usageErr("--%s: %q: %v; want %s", flag, hp, err, want)
	}
	if err := checkPort(hp, flag, port, flag == "listen", want); err != nil {
		return err
	}
	if !allowRemote && !sockaddr.IsLoopbackHostPort(hp) {
		return usageErr("--%s: %q is not a loopback address; add --allow-remote if you mean it", flag, hp)
	}
	return nil
}

// checkPort refuses a port that is no number from 1 (0 too where any free
// port will do) to 65535: the kernel would say only "invalid argument".
func checkPort(hp, flag, port string, zeroOK bool, want string) error {
	lo := 1
	if zeroOK {
		lo = 0
	}
	if n, err := strconv.Atoi(port); err != nil || n < lo || n > 65535 {
		return usageErr("--%s: %q: port %q is not a number from %d to 65535; want %s", flag, hp, port, lo, want)
	}
	return nil
}

// aboveNrOpen says no hard limit could be n: no ulimit -Hn helps then.
func aboveNrOpen(n uint64) bool {
	s, _ := limits.ReadSysctls(limits.DefaultProcRoot) // unreadable: -1, no verdict
	return s.NrOpen > 0 && n > uint64(s.NrOpen)
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"

	"github.com/spf13/pflag"

	"github.com/connlimit/connlimit/engine"
	"github.com/connlimit/connlimit/limits"
)

func runLimits(ctx context.Context, args []string, stdout io.Writer) error {
	fs := pflag.NewFlagSet("limits", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	procRoot := limits.DefaultProcRoot
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			fmt.Fprint(stdout, "Usage: connlimit limits\n\nShows the limits that decide how many connections fit, and what they mean.\n")
			return errHelp
		}
		return flagError(err, "limits", nil)
	}
	if err := noEmptyValues(fs, "tls-server-name", "namespace"); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("limits takes no arguments, got %q", fs.Args())
	}
	inh, from := limits.InheritedSoft(ctx, procRoot)
	nf, err := limits.ReadNoFile()
	if err != nil {
		return runtimeErr(err)
	}
	nf.Inherited, nf.InheritedFrom = inh, from
	sc, scErr := limits.ReadSysctls(procRoot)
	return writeLimits(stdout, nf, sc, scErr)
}

// writeLimits prints each reading with what it means for connections.
func writeLimits(w io.Writer, nf limits.NoFile, sc limits.Sysctls, scErr error) error {
	b := &strings.Builder{}
	p := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	v := func(n int64) string {
		if n < 0 {
			return "unreadable"
		}
		return fmt.Sprint(n)
	}
	p("RLIMIT_NOFILE of this process (every socket is a file descriptor):\n")
	p("  %-22s %-10s %s\n", "inherited soft", nf.InheritedText(), "what the shell gave ("+nf.InheritedFrom+")")
	p("  %-22s %-10d %s\n", "current soft", nf.Soft, "the Go runtime raises soft toward hard at start-up")
	p("  %-22s %-10d %s\n", "hard", nf.Hard, fmt.Sprintf("one process can hold at most %d descriptors, so fewer connections", nf.Hard))
	p("\nkernel:\n")
	p("  %-22s %-10s %s\n", "fs.nr_open", v(sc.NrOpen), "the ceiling for any process's hard limit")
	p("  %-22s %-10s %s\n", "fs.file-max", v(sc.FileMax), "descriptors the whole machine may have open")
	p("  %-22s %-10s %s\n", "fs.file-nr", v(sc.FileNrAllocated), "descriptors allocated right now, machine-wide")
	if pr := sc.PortRange; pr.Low >= 0 {
		p("  %-22s %-10s %s\n", "ip_local_port_range", fmt.Sprintf("%d-%d", pr.Low, pr.High),
			fmt.Sprintf("%d ephemeral ports: one source address can open at most %d connections to one ip:port", pr.Count(), pr.Count()))
	} else {
		p("  %-22s %-10s\n", "ip_local_port_range", "unreadable")
	}
	p("  %-22s %-10s %s\n", "net.core.somaxconn", v(sc.Somaxconn), somaxconnMeaning(sc.Somaxconn))
	p("  %-22s %-10s %s\n", "tcp_max_syn_backlog", v(sc.TCPMaxSynBacklog), "half-open connections (SYN received, handshake unfinished) per listener")
	p("  %-22s %-10s %s\n", "tcp_syncookies", v(sc.TCPSyncookies), "1: answer with SYN cookies when the SYN queue overflows")
	p("  %-22s %-10s %s\n", "tcp_syn_retries", v(sc.TCPSynRetries), synRetriesMeaning(sc.TCPSynRetries))
	writePortBudget(p, nf, sc)
	if scErr != nil {
		p("\nsome readings failed: %v\n", scErr)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func somaxconnMeaning(n int64) string {
	if n < 0 {
		return "caps every listen backlog"
	}
	return fmt.Sprintf("caps every listen backlog: at most %d connections wait in one accept queue", n+1)
}

// synRetriesMeaning: the SYN is resent after 1, 2, 4, ... s, so n retries
// give up after 2^(n+1)-1 seconds.
func synRetriesMeaning(n int64) string {
	if n < 0 || n > 30 {
		return "SYN retransmissions before connect() gives up"
	}
	return fmt.Sprintf("a connect without its own timeout gives up after about %d s of unanswered SYNs", (int64(1)<<(n+1))-1)
}

// writePortBudget tells how many processes and source addresses a number of
// connections needs here: the run's own plan (engine.NewPlan) says it.
func writePortBudget(p func(string, ...any), nf limits.NoFile, sc limits.Sysctls) {
	perProc := int(nf.Hard) - engine.GeneratorReserve
	if perProc <= 0 {
		return
	}
	p("\nbudget (what connlimit run --procs auto, --target-procs auto, --ramp-procs auto and source addresses choose):\n")
	p("  one process holds at most %d connections (hard limit %d less %d for itself)\n", perProc, nf.Hard, engine.GeneratorReserve)
	p("  one (source address, destination ip:port) pair: at most %d ephemeral ports, and connect() slows 10-25x\n", max(0, sc.PortRange.Count()))
	p("  past ~14000 (it prefers even ports, then scans): connlimit keeps each pair under %d\n", engine.PerTupleBudget)
	for _, n := range []int{10_000, 100_000, 1_000_000} {
		plan, err := engine.NewPlan(engine.PlanInput{Config: engine.Config{Connections: n}, NoFile: nf, NumCPU: runtime.NumCPU()})
		if err != nil {
			p("  %9d connections: %v\n", n, err)
			continue
		}
		ramp := ""
		if plan.RampProcs > 0 {
			ramp = fmt.Sprintf(" (%d connecting at once)", plan.RampProcs)
		}
		p("  %9d connections: %s%s, %s, %s on loopback\n", n, plural(plan.Procs, "generator process"), ramp,
			plural(plan.TargetProcs, "target process"), plural(max(1, len(plan.Sources)), "source address"))
	}
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	if strings.HasSuffix(what, "s") {
		return fmt.Sprintf("%d %ses", n, what)
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// Command connlimit finds, shows and explains where a TCP server stops
// taking connections: a socket is a file descriptor, and every process is
// capped by RLIMIT_NOFILE.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	// First: it stops a run under a hard limit too low to start, before
	// any other package's init can open a descriptor (see its doc).
	_ "github.com/connlimit/connlimit/internal/lowlimit"
	"github.com/connlimit/connlimit/report"
)

// stopSignals end a run with its report written: Ctrl-C, a kill, and a
// hang-up (a closed terminal, a dropped ssh session).
var stopSignals = []os.Signal{os.Interrupt, syscall.SIGTERM, syscall.SIGHUP}

func main() {
	ctx, cancel := context.WithCancelCause(context.Background())
	temps := &report.Temps{}
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, stopSignals...)
	// A reader that went away (connlimit | head) makes a write to stdout
	// fail with EPIPE instead of killing the process: the summary is lost,
	// the report files are still written and no temporary file is left.
	// Nobody reads the channel: the signal is only there to be caught.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	go func() {
		sig, ok := <-sigs
		if !ok {
			return
		}
		cancel(&signalError{sig.(syscall.Signal)})
		// A second signal exits at once, leaving no temporary file behind.
		// Children die with us through Pdeathsig.
		sig, ok = <-sigs
		if !ok {
			return
		}
		n := temps.RemoveAll()
		fmt.Fprintf(os.Stderr, "connlimit: second %v: exiting at once; the report was not written (%d temporary files removed)\n", sig, n)
		os.Exit(128 + int(sig.(syscall.Signal)))
	}()
	err := runWith(ctx, os.Args[1:], os.Stdout, os.Stderr, runEnv{temps: temps})
	signal.Stop(sigs)
	close(sigs)
	code := exitCode(err)
	if err != nil && !isSilent(err) {
		fmt.Fprintf(os.Stderr, "connlimit: %v\n", err)
	}
	os.Exit(code)
}

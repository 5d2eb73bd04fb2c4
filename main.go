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
)

func main() {
	ctx, cancel := context.WithCancelCause(context.Background())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		sig, ok := <-sigs
		if !ok {
			return
		}
		// A second signal gets the default action: exit at once. Children
		// still die with us through Pdeathsig.
		signal.Reset(os.Interrupt, syscall.SIGTERM)
		cancel(&signalError{sig.(syscall.Signal)})
	}()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	signal.Stop(sigs)
	close(sigs)
	code := exitCode(err)
	if err != nil && !isSilent(err) {
		fmt.Fprintf(os.Stderr, "connlimit: %v\n", err)
	}
	os.Exit(code)
}

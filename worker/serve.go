package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/spf13/pflag"

	"github.com/connlimit/connlimit/internal/shm"
	"github.com/connlimit/connlimit/internal/sockaddr"
	"github.com/connlimit/connlimit/limits"
	"github.com/connlimit/connlimit/loadgen"
)

// event is one line a worker writes to its parent; its counters the
// parent reads in the shared block.
type event struct {
	Event string `json:"event"` // "opened", "done"
	Err   string `json:"err,omitempty"`
}

// startByte on a gated worker's stdin lets it start connecting.
const startByte = 's'

// ErrUsage marks an error in the arguments Serve was given.
var ErrUsage = errors.New("worker: an internal command of connlimit run; use connlimit run --procs N")

// Serve is the worker child: it parses the arguments Start gave it, makes
// its attempts and holds them until stdin closes or ctx ends, then hands
// its results to the parent.
func Serve(ctx context.Context, args []string, stdin io.Reader) error {
	fs := pflag.NewFlagSet("worker", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var (
		targets, sources, probe, host, httpPath, serverName string
		n, nofile, concurrency, payload, mss                int
		rate                                                float64
		connectTimeout, replyTimeout                        time.Duration
		epoch                                               int64
		builtin, localAddrs, gated, quietClose              bool
	)
	fs.StringVar(&targets, "targets", "", "")
	fs.StringVar(&sources, "source-ips", "", "")
	fs.StringVar(&probe, "probe", "greeting", "")
	fs.StringVar(&host, "host", "", "")
	fs.StringVar(&httpPath, "http-path", "/", "")
	fs.StringVar(&serverName, "tls-server-name", "", "")
	fs.IntVar(&n, "connections", 0, "")
	fs.IntVar(&nofile, "nofile", 0, "")
	fs.IntVar(&concurrency, "concurrency", loadgen.DefaultConcurrency, "")
	fs.IntVar(&payload, "payload", 16, "")
	fs.IntVar(&mss, "mss", 0, "")
	fs.Float64Var(&rate, "rate", 0, "")
	fs.DurationVar(&connectTimeout, "connect-timeout", loadgen.DefaultConnectTimeout, "")
	fs.DurationVar(&replyTimeout, "greeting-timeout", loadgen.DefaultGreetingTimeout, "")
	fs.Int64Var(&epoch, "epoch", 0, "")
	fs.BoolVar(&builtin, "builtin", false, "")
	fs.BoolVar(&localAddrs, "local-addrs", false, "")
	fs.BoolVar(&quietClose, "quiet-close", false, "")
	fs.BoolVar(&gated, "gated", false, "")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %v", ErrUsage, err)
	}
	events, results := os.NewFile(3, "events"), os.NewFile(4, "results")
	if events == nil || results == nil || n < 1 {
		return ErrUsage
	}
	defer events.Close()
	defer results.Close()
	mem, err := shm.Inherit(5, blockSize)
	if err != nil {
		return fmt.Errorf("worker: counters: %w", err)
	}
	defer shm.Unmap(mem)
	enc := encoder{json.NewEncoder(events)}

	var dsts []netip.AddrPort
	for t := range strings.SplitSeq(targets, ",") {
		ap, err := netip.ParseAddrPort(t)
		if err != nil {
			return fmt.Errorf("%w: --targets: %v", ErrUsage, err)
		}
		dsts = append(dsts, ap)
	}
	var srcs []netip.Addr
	if sources != "" {
		var err error
		if srcs, err = sockaddr.ParseList(sources); err != nil {
			return fmt.Errorf("%w: --source-ips: %v", ErrUsage, err)
		}
	}
	if _, err := limits.EnsureSoft(uint64(max(n, nofile))); err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	p := NewProbe(ProbeSpec{Kind: probe, Payload: payload, Builtin: builtin, Host: host, HTTPPath: httpPath, ServerName: serverName})
	gen, err := loadgen.New(loadgen.Config{Targets: dsts, Sources: srcs, Connections: n, Rate: rate, Concurrency: concurrency,
		ConnectTimeout: connectTimeout, GreetingTimeout: replyTimeout, Probe: p, MSS: mss, Segments: probe == "echo", LocalAddrs: localAddrs,
		QuietClose: quietClose, Epoch: time.Unix(0, epoch), Counters: shm.At[loadgen.Counters](mem)})
	if err != nil {
		return err
	}

	// Stdin closing (or a signal, through ctx) ends the hold, or the wait
	// for the start of a gated worker, which then makes no attempt.
	holdCtx, release := context.WithCancel(ctx)
	defer release()
	start := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		if gated {
			var b [1]byte
			if _, err := io.ReadFull(stdin, b[:]); err == nil && b[0] == startByte {
				close(start)
			}
		}
		io.Copy(io.Discard, stdin)
		release()
	})
	// Ready before any start: growing the descriptor table waits for an
	// RCU grace period, which would idle the turn a gated worker is given.
	openErr := gen.Prepare()
	if gated {
		select {
		case <-start:
		case <-holdCtx.Done():
		}
	}
	if openErr == nil {
		openErr = gen.Open(holdCtx)
	}
	enc.send(event{Event: "opened"})
	if openErr == nil {
		// What the ramp left behind goes back to the kernel: the hold may
		// last hours, and a held connection should cost only what it keeps.
		debug.FreeOSMemory()
		_ = gen.Hold(holdCtx, 24*time.Hour) // until stdin closes or a signal
	}
	// The results first: the parent decodes them while this worker and
	// the others spend seconds (at a million) closing their connections.
	err = writeWorkerResults(results, gen)
	closeErr := gen.Close()
	ev := event{Event: "done"}
	if err == nil {
		err = closeErr
	}
	if err != nil {
		ev.Err = err.Error()
	}
	enc.send(ev)
	events.Close() // the parent's reader ends; the stdin reader ends when the parent closes it
	release()
	wg.Wait()
	return err
}

// writeWorkerResults hands the attempts to the parent (handoff.go).
func writeWorkerResults(f *os.File, gen *loadgen.Generator) error {
	if err := encodeAttempts(f, gen.Attempts()); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// encoder writes event lines; only Serve's own flow sends them.
type encoder struct{ enc *json.Encoder }

func (e encoder) send(ev event) {
	_ = e.enc.Encode(ev) // a parent gone away is seen through stdin and Pdeathsig
}

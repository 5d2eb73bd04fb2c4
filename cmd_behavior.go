package main

import (
	"maps"
	"time"

	"github.com/spf13/pflag"

	"github.com/connlimit/connlimit/target"
)

// behaviorFlags are the built-in target's behaviour at its limits, shared by
// the run and target subcommands.
type behaviorFlags struct {
	onEMFILE, onMaxConns string
	backlog, maxConns    int
	acceptDelay          time.Duration
}

const (
	maxBacklog     = 1 << 20
	backlogRange   = "an integer from 0 (net.core.somaxconn) to 1048576; the kernel caps it at somaxconn"
	maxAcceptDelay = 10 * time.Second
)

var behaviorRanges = map[string]string{
	"on-emfile":    "backoff, shed or stop",
	"backlog":      backlogRange,
	"max-conns":    "an integer from 0 (no cap) to 10000000",
	"on-max-conns": "wait, close or stop",
	"accept-delay": "a duration from 0 to 10s, such as 20ms",
}

// withBehaviorRanges adds the shared flags' ranges to a subcommand's own.
func withBehaviorRanges(own map[string]string) map[string]string {
	m := maps.Clone(own)
	maps.Copy(m, behaviorRanges)
	return m
}

func (b *behaviorFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&b.onEMFILE, "on-emfile", string(target.PolicyBackoff), "the target's accept policy when out of descriptors: backoff, shed or stop")
	fs.IntVar(&b.backlog, "backlog", 0, "the target's listen backlog (0 = net.core.somaxconn)")
	fs.IntVar(&b.maxConns, "max-conns", 0, "the target's application connection cap (0 = none)")
	fs.StringVar(&b.onMaxConns, "on-max-conns", string(target.CapWait), "at the cap: wait (stop accepting), close (accept and close) or stop (close the listener)")
	fs.DurationVar(&b.acceptDelay, "accept-delay", 0, "the target pauses this long before each accept (a slow accept loop)")
}

// behavior validates the flags.
func (b *behaviorFlags) behavior() (target.Behavior, error) {
	bad := func(name string, v any) error { return usageErr("--%s %v: want %s", name, v, behaviorRanges[name]) }
	switch {
	case b.backlog < 0 || b.backlog > maxBacklog:
		return target.Behavior{}, bad("backlog", b.backlog)
	case b.maxConns < 0 || b.maxConns > maxConnections:
		return target.Behavior{}, bad("max-conns", b.maxConns)
	case b.acceptDelay < 0 || b.acceptDelay > maxAcceptDelay:
		return target.Behavior{}, bad("accept-delay", b.acceptDelay)
	}
	policy, err := target.ParsePolicy(b.onEMFILE)
	if err != nil {
		return target.Behavior{}, usageErr("--on-emfile: %v", err)
	}
	capPolicy, err := target.ParseCapPolicy(b.onMaxConns)
	if err != nil {
		return target.Behavior{}, usageErr("--on-max-conns: %v", err)
	}
	if b.maxConns == 0 && b.onMaxConns != string(target.CapWait) {
		return target.Behavior{}, usageErr("--on-max-conns %s: says what to do at --max-conns, and there is no cap (--max-conns 0): set --max-conns too", b.onMaxConns)
	}
	return target.Behavior{OnEMFILE: policy, Backlog: b.backlog, MaxConns: b.maxConns,
		OnMaxConns: capPolicy, AcceptDelay: b.acceptDelay}, nil
}

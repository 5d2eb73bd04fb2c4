package engine

import (
	"time"

	"github.com/connlimit/connlimit/limits"
	"github.com/connlimit/connlimit/loadgen"
	"github.com/connlimit/connlimit/target"
)

// settleQuiet is how long the accept queue must stay unchanged before the
// connections in it are called queued.
const settleQuiet = 50 * time.Millisecond

// settleQueued lets the generator stop waiting for greetings that cannot
// come: once the built-in target has run out of descriptors, the
// connections still unanswered are all in its accept queue (the kernel
// lists them, with no socket yet), and the queue has not moved for
// settleQuiet, they are queued now rather than after --greeting-timeout.
// It applies only where that is certain: one built-in target that backs
// off at EMFILE, with no cap, no accept delay and no forwarder; nil
// otherwise, and the greeting timeout decides.
func settleQueued(cfg *Config, kv *limits.KernelView, side *targetSide) func([]loadgen.Waiting) bool {
	b := cfg.Behavior
	if side.tp == nil || len(side.tps) != 1 || side.fp != nil || kv == nil ||
		(b.OnEMFILE != "" && b.OnEMFILE != target.PolicyBackoff) || b.MaxConns > 0 || b.AcceptDelay > 0 ||
		(cfg.Probe != "greeting" && cfg.Probe != "echo") {
		return nil
	}
	ports := []uint16{side.addr.Port()}
	last, since := -1, time.Time{}
	return func(waiting []loadgen.Waiting) bool {
		if side.tp.FirstEMFILE() == nil {
			return false // it has descriptors: it may still accept them
		}
		q, err := kv.Queued(ports)
		if err != nil {
			return false
		}
		for _, w := range waiting {
			if !q[limits.ServerConn{Client: w.Local, Port: ports[0]}] {
				last = -1 // accepted, its answer on the way
				return false
			}
		}
		now := time.Now()
		if len(q) != last {
			last, since = len(q), now
			return false
		}
		return now.Sub(since) >= settleQuiet
	}
}

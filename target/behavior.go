package target

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Behavior is how the target treats clients at its limits. Run passes it
// through to its target child as flags.
type Behavior struct {
	// OnEMFILE is the accept policy out of descriptors; PolicyBackoff when empty.
	OnEMFILE Policy
	// Backlog is the listen backlog; 0 lets Go use net.core.somaxconn.
	Backlog int
	// MaxConns is an application connection cap, as servers have
	// (maxclients, max_connections); 0 for none.
	MaxConns int
	// OnMaxConns is what the target does at MaxConns; CapWait when empty.
	OnMaxConns CapPolicy
	// AcceptDelay is spent before each accept: a slow accept loop.
	AcceptDelay time.Duration
	// Silent sends no greeting, for clients that only connect: the greeting
	// is a data segment and its ACK, which cost a million-connection ramp
	// a fifth of its time. The target's accepted count is then the only
	// sign of which connections were accepted.
	Silent bool
	// QuietClose closes the held connections at exit in TCP repair mode:
	// no packet, where the process has CAP_NET_ADMIN. Run sets it when its
	// own generator closes its ends the same way, so neither end is told.
	QuietClose bool
}

// CapPolicy is what the target does once MaxConns connections are open.
type CapPolicy string

// Policies at the application connection cap.
const (
	// CapWait stops calling accept() until a connection ends, as
	// golang.org/x/net/netutil.LimitListener does: clients queue.
	CapWait CapPolicy = "wait"
	// CapClose accepts and closes at once, as Redis does past maxclients.
	CapClose CapPolicy = "close"
	// CapStop closes the listener: later connects are refused.
	CapStop CapPolicy = "stop"
)

// CapPolicies lists the accepted names.
var CapPolicies = []CapPolicy{CapWait, CapClose, CapStop}

// ParseCapPolicy accepts one of CapPolicies.
func ParseCapPolicy(s string) (CapPolicy, error) { return parseName(s, CapPolicies) }

// parseName accepts one of the names in all, and lists them otherwise.
func parseName[T ~string](s string, all []T) (T, error) {
	for _, p := range all {
		if string(p) == s {
			return p, nil
		}
	}
	names := make([]string, len(all))
	for i, p := range all {
		names[i] = string(p)
	}
	return "", fmt.Errorf("unknown policy %q: want %s or %s", s, strings.Join(names[:len(names)-1], ", "), names[len(names)-1])
}

// Args renders b as flags of the target subcommand.
func (b Behavior) Args() []string {
	var args []string
	if b.OnEMFILE != "" {
		args = append(args, "--on-emfile", string(b.OnEMFILE))
	}
	if b.Backlog > 0 {
		args = append(args, "--backlog", strconv.Itoa(b.Backlog))
	}
	if b.MaxConns > 0 {
		args = append(args, "--max-conns", strconv.Itoa(b.MaxConns))
	}
	if b.OnMaxConns != "" {
		args = append(args, "--on-max-conns", string(b.OnMaxConns))
	}
	if b.AcceptDelay > 0 {
		args = append(args, "--accept-delay", b.AcceptDelay.String())
	}
	if b.Silent {
		args = append(args, "--silent")
	}
	if b.QuietClose {
		args = append(args, "--quiet-close")
	}
	return args
}

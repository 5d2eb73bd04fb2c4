package target

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"sync"

	"github.com/connlimit/connlimit/limits"
)

// Event types the target reports, one JSON object per line.
const (
	EventReady       = "ready"        // listening; Addr, PID, NoFile* set
	EventStats       = "stats"        // periodic counters
	EventFirstEMFILE = "first_emfile" // accept failed for lack of descriptors the first time
	EventExit        = "exit"         // final counters, sent just before Serve returns
)

// Event is one line of the target's machine-readable report. Counters are
// cumulative since the target started.
type Event struct {
	Type         string      `json:"event"`
	PID          int         `json:"pid,omitempty"`
	Addr         string      `json:"addr,omitempty"`
	NoFileSoft   uint64      `json:"nofile_soft,omitempty"`
	NoFileHard   uint64      `json:"nofile_hard,omitempty"`
	Accepted     int64       `json:"accepted"`
	AcceptErrors int64       `json:"accept_errors"`
	Shed         int64       `json:"shed,omitempty"`   // connections closed at once by PolicyShed
	Capped       int64       `json:"capped,omitempty"` // connections closed at once at the cap by CapClose
	Open         int64       `json:"open"`
	FDsOpen      int         `json:"fds_open"`
	Errno        string      `json:"errno,omitempty"`
	Phase        string      `json:"phase,omitempty"`       // first_emfile: "accept", or "dial" for a forwarder's upstream
	Forwarded    int64       `json:"forwarded,omitempty"`   // forwarder: connections joined to the upstream
	DialErrors   int64       `json:"dial_errors,omitempty"` // forwarder: upstream dials that failed
	OtherFDs     []limits.FD `json:"other_fds,omitempty"`
	// SlotsUsed counts the descriptors numbered below the soft limit: only
	// those count against it (the lowest free number must be below it).
	SlotsUsed int `json:"slots_used,omitempty"`
	// AboveLimitFDs were inherited with numbers at or above the soft limit.
	AboveLimitFDs []limits.FD `json:"above_limit_fds,omitempty"`
}

// eventWriter serialises events from the accept loop and the stats ticker.
type eventWriter struct {
	mu  sync.Mutex
	enc *json.Encoder
}

func newEventWriter(w io.Writer) *eventWriter {
	if w == nil {
		w = io.Discard
	}
	return &eventWriter{enc: json.NewEncoder(w)}
}

func (e *eventWriter) write(ev Event) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.enc.Encode(ev); err != nil {
		return fmt.Errorf("write %s event: %w", ev.Type, err)
	}
	return nil
}

// ReadEvents decodes events from r and calls fn for each until EOF. A line
// that is not a valid event ends the stream with an error naming the line.
func ReadEvents(r io.Reader, fn func(Event)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for line := 1; sc.Scan(); line++ {
		var ev Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return fmt.Errorf("target event line %d: %w", line, err)
		}
		if ev.Type == "" {
			return fmt.Errorf("target event line %d: no event type", line)
		}
		fn(ev)
	}
	return sc.Err()
}

// greetingPrefix starts every greeting: "connlimit <seq> <peer ip:port>\n".
const greetingPrefix = "connlimit "

// AppendGreeting appends the line the target writes to the seq-th accepted
// connection, naming the peer as the target sees it.
func AppendGreeting(b []byte, seq uint64, peer netip.AddrPort) []byte {
	b = append(b, greetingPrefix...)
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, ' ')
	b = peer.AppendTo(b)
	return append(b, '\n')
}

// ParseGreeting returns the accept sequence number from a greeting line (with
// or without its newline). ok is false when line is not a greeting.
func ParseGreeting(line []byte) (seq uint32, ok bool) {
	if len(line) <= len(greetingPrefix) || string(line[:len(greetingPrefix)]) != greetingPrefix {
		return 0, false
	}
	rest := line[len(greetingPrefix):]
	var v uint64
	n := 0
	for ; n < len(rest) && rest[n] >= '0' && rest[n] <= '9'; n++ {
		v = v*10 + uint64(rest[n]-'0')
		if v > 1<<32-1 {
			return 0, false
		}
	}
	if n == 0 || n == len(rest) || rest[n] != ' ' {
		return 0, false
	}
	return uint32(v), true
}

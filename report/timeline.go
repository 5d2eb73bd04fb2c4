package report

import (
	"encoding/csv"
	"io"
	"strconv"
	"time"

	"github.com/connlimit/connlimit/limits"
	"github.com/connlimit/connlimit/loadgen"
)

// TimelineHeader is the --timeline CSV header; scripts depend on it.
var TimelineHeader = []string{"elapsed_s", "attempted", "connecting", "open", "served", "queued", "failed",
	"target_accepted", "target_fds", "target_accept_errors",
	"accept_queue", "listen_backlog", "listen_overflows", "listen_drops", "syncookies_sent",
	"reqq_full_drop", "reqq_full_do_cookies", "connect_timeouts", "target_nofile", "forwarder_fds", "forwarder_nofile", "forwarder_errors"}

// Sample is the run's state at one moment, from both sides.
type Sample struct {
	Elapsed            time.Duration
	Gen                loadgen.Snapshot
	TargetAccepted     int64
	TargetFDs          int
	TargetAcceptErrors int64
	// Kernel is the listener's accept queue and the TcpExt growth since the start.
	Kernel limits.KernelSample
	// TargetNoFile is the soft limit behind TargetFDs; 0 when unknown.
	TargetNoFile uint64
	// ForwarderFDs and ForwarderNoFile are the forwarder's (run --forward); 0 without one.
	ForwarderFDs    int
	ForwarderNoFile uint64
	// ForwarderErrors are its failed accepts and failed dials to the target.
	ForwarderErrors int64
	// HoldLeft is the time the hold has to run; 0 outside the hold.
	HoldLeft time.Duration
}

// Timeline writes one CSV row per sample.
type Timeline struct {
	cw  *csv.Writer
	row []string
}

// NewTimeline writes the header.
func NewTimeline(w io.Writer) (*Timeline, error) {
	t := &Timeline{cw: csv.NewWriter(w), row: make([]string, len(TimelineHeader))}
	return t, t.cw.Write(TimelineHeader)
}

// Write adds one row.
func (t *Timeline) Write(s Sample) error {
	g := s.Gen
	t.row[0] = strconv.FormatFloat(s.Elapsed.Seconds(), 'f', 3, 64)
	for i, v := range []int64{g.Attempted, g.Connecting, g.Open, g.Served, g.Queued, g.Failed,
		s.TargetAccepted, int64(s.TargetFDs), s.TargetAcceptErrors} {
		t.row[i+1] = strconv.FormatInt(v, 10)
	}
	i := 10
	if l := s.Kernel.Listener; l != nil {
		t.row[i], t.row[i+1] = strconv.FormatUint(uint64(l.AcceptQueue), 10), strconv.FormatUint(uint64(l.Backlog), 10)
	} else {
		t.row[i], t.row[i+1] = "", "" // no listener seen: unknown, not zero
	}
	for j, c := range s.Kernel.TCPExt.Fields() {
		t.row[i+2+j] = strconv.FormatInt(c.Value, 10)
	}
	t.row[17] = strconv.FormatInt(g.ConnectTimeouts, 10)
	t.row[18] = ifInt(s.TargetNoFile > 0, int64(s.TargetNoFile))
	t.row[19] = ifInt(s.ForwarderNoFile > 0, int64(s.ForwarderFDs))
	t.row[20] = ifInt(s.ForwarderNoFile > 0, int64(s.ForwarderNoFile))
	t.row[21] = ifInt(s.ForwarderNoFile > 0, s.ForwarderErrors)
	return t.cw.Write(t.row)
}

// Flush writes buffered rows and reports any write error.
func (t *Timeline) Flush() error {
	t.cw.Flush()
	return t.cw.Error()
}

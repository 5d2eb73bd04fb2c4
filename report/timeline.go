package report

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
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

// ReadTimeline reads a --timeline CSV. Columns are found by name; the ones
// the chart needs must be there, and there must be at least one row.
//
// Its input is bounded (plot /dev/zero must fail, not fill the memory): a
// line at most MaxTimelineLine bytes, at most MaxTimelineRows rows, values
// from 0 to MaxTimelineValue; rows past MaxPoints are thinned as a run
// thins them.
func ReadTimeline(r io.Reader) ([]Point, error) {
	cr := csv.NewReader(&lineLimit{r: r, max: MaxTimelineLine})
	header, err := cr.Read()
	if err == io.EOF {
		return nil, errors.New("empty file: want a timeline written by connlimit run --timeline")
	}
	if err != nil {
		return nil, fmt.Errorf("not a CSV timeline: %w", err)
	}
	col := map[string]int{}
	for i, h := range header {
		col[h] = i
	}
	need := []string{"elapsed_s", "open", "served", "queued", "failed", "target_fds"}
	for _, n := range need {
		if _, ok := col[n]; !ok {
			return nil, fmt.Errorf("no %s column: want a timeline written by connlimit run --timeline", n)
		}
	}
	var pts Points
	for line := 2; ; line++ {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		if line-1 > MaxTimelineRows {
			return nil, fmt.Errorf("more than %d rows: a day at the shortest --interval is %d; want a timeline written by connlimit run --timeline", MaxTimelineRows, MaxTimelineRows)
		}
		num := func(name string) (float64, error) {
			i, ok := col[name]
			if !ok || rec[i] == "" {
				return 0, nil // an optional column, or a figure that was not known
			}
			v, err := strconv.ParseFloat(rec[i], 64)
			if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
				return 0, fmt.Errorf("line %d: %s %q is not a number", line, name, rec[i])
			}
			if v < 0 || v > MaxTimelineValue {
				return 0, fmt.Errorf("line %d: %s %s is out of range: want 0 to %g", line, name, rec[i], MaxTimelineValue)
			}
			return v, nil
		}
		var p Point
		for _, f := range []struct {
			name string
			dst  *float64
		}{{"elapsed_s", &p.Elapsed}, {"open", &p.Open}, {"served", &p.Served}, {"queued", &p.Queued}, {"failed", &p.Failed},
			{"target_fds", &p.TargetFDs}, {"target_nofile", &p.TargetNoFile}, {"target_accept_errors", &p.AcceptErrors},
			{"connect_timeouts", &p.ConnectTimeouts}, {"accept_queue", &p.AcceptQueue},
			{"forwarder_fds", &p.ForwarderFDs}, {"forwarder_nofile", &p.ForwarderNoFile}, {"forwarder_errors", &p.ForwarderErrors}} {
			if *f.dst, err = num(f.name); err != nil {
				return nil, err
			}
		}
		if i, ok := col["accept_queue"]; ok && rec[i] != "" {
			p.HasQueue = true
		}
		pts.Add(p)
	}
	if len(pts.All) == 0 {
		return nil, errors.New("no rows: the timeline has a header only")
	}
	return pts.All, nil
}

// Bounds of a timeline ReadTimeline accepts.
const (
	MaxTimelineLine  = 64 << 10
	MaxTimelineRows  = 24 * 3600 * 100 // a day at --interval 10ms
	MaxTimelineValue = 1e15
)

// MaxPoints bounds the points a chart keeps: a day's hold at 100 ms would
// be 864,000; halving the density past the bound keeps the shape.
const MaxPoints = 20000

// Points collects a chart's points, at most MaxPoints: past the bound it
// keeps every other one and from then on every second, fourth, ... added.
// The zero value is ready to use.
type Points struct {
	All   []Point
	every int // keep every every-th point added; 0 means 1
	seen  int
}

// Add offers the next point in time order.
func (ps *Points) Add(p Point) {
	if ps.every == 0 {
		ps.every = 1
	}
	if ps.seen%ps.every == 0 {
		ps.All = append(ps.All, p)
		if len(ps.All) >= MaxPoints {
			for i := range len(ps.All) / 2 {
				ps.All[i] = ps.All[2*i]
			}
			ps.All = ps.All[:len(ps.All)/2]
			ps.every *= 2
		}
	}
	ps.seen++
}

// LineLimit is r failing once a line runs past max bytes: for CSV files
// read from elsewhere (merge's shards').
func LineLimit(r io.Reader, max int) io.Reader { return &lineLimit{r: r, max: max} }

// lineLimit fails a read once a line runs past max bytes: csv.Reader would
// otherwise buffer a file with no newline whole.
type lineLimit struct {
	r   io.Reader
	max int
	run int // bytes since the last newline
}

func (l *lineLimit) Read(b []byte) (int, error) {
	n, err := l.r.Read(b)
	for _, c := range b[:n] {
		if c == '\n' {
			l.run = 0
		} else if l.run++; l.run > l.max {
			return 0, fmt.Errorf("a line longer than %d bytes: not a timeline written by connlimit run --timeline", l.max)
		}
	}
	return n, err
}

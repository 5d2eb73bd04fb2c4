package report

import (
	"bufio"
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"time"
)

// ShardTimeline is one shard's --timeline CSV and the wall-clock instant
// its elapsed_s counts from.
type ShardTimeline struct {
	Name  string
	Began time.Time
	R     io.Reader
}

// summedColumns are the generator's own counts: each shard's are its part
// of the run's. The others are the target and the kernel as a shard saw
// them, one target seen by several: the largest reading is kept.
var summedColumns = map[string]bool{"attempted": true, "connecting": true, "open": true, "served": true,
	"queued": true, "failed": true, "connect_timeouts": true}

type timelineRows struct {
	at   []float64 // seconds after the earliest shard began
	rows [][]string
	i    int
}

// MergeTimelines writes one timeline from the shards' own, on one clock:
// every interval from the earliest shard's start to the latest's end, each
// shard taken as its last row at or before that instant (before its first,
// it had made nothing).
func MergeTimelines(w io.Writer, shards []ShardTimeline, interval time.Duration) error {
	if len(shards) == 0 {
		return fmt.Errorf("no timelines")
	}
	earliest := slices.MinFunc(shards, func(a, b ShardTimeline) int { return a.Began.Compare(b.Began) }).Began
	var all []*timelineRows
	end := 0.0
	for _, s := range shards {
		cr := csv.NewReader(bufio.NewReader(&lineLimit{r: s.R, max: MaxTimelineLine}))
		h, err := cr.Read()
		if err != nil {
			return fmt.Errorf("%s: %w", s.Name, err)
		}
		if !slices.Equal(h, TimelineHeader) {
			return fmt.Errorf("%s: not a connlimit timeline of this version (its columns differ)", s.Name)
		}
		tr := &timelineRows{}
		off := s.Began.Sub(earliest).Seconds()
		for n := 2; ; n++ {
			rec, err := cr.Read()
			if err == io.EOF {
				break
			}
			if err != nil {
				return fmt.Errorf("%s line %d: %w", s.Name, n, err)
			}
			if n > MaxTimelineRows {
				return fmt.Errorf("%s: more than %d rows", s.Name, MaxTimelineRows)
			}
			e, err := strconv.ParseFloat(rec[0], 64)
			if err != nil || math.IsNaN(e) || e < 0 {
				return fmt.Errorf("%s line %d: elapsed_s %q", s.Name, n, rec[0])
			}
			tr.at = append(tr.at, off+e)
			tr.rows = append(tr.rows, slices.Clone(rec))
		}
		if len(tr.at) > 0 {
			end = max(end, tr.at[len(tr.at)-1])
		}
		all = append(all, tr)
	}
	cw := csv.NewWriter(w)
	if err := cw.Write(TimelineHeader); err != nil {
		return err
	}
	step := max(interval.Seconds(), 0.01)
	out := make([]string, len(TimelineHeader))
	for k := 0; ; k++ {
		t := float64(k) * step
		if t > end+step/2 {
			break
		}
		sums := make([]int64, len(TimelineHeader))
		known := make([]bool, len(TimelineHeader))
		for _, tr := range all {
			for tr.i < len(tr.at) && tr.at[tr.i] <= t+1e-9 {
				tr.i++
			}
			if tr.i == 0 {
				continue // not started yet
			}
			row := tr.rows[tr.i-1]
			for c := 1; c < len(TimelineHeader); c++ {
				if row[c] == "" {
					continue
				}
				v, err := strconv.ParseInt(row[c], 10, 64)
				if err != nil {
					return fmt.Errorf("%s %q: not a count", TimelineHeader[c], row[c])
				}
				switch {
				case summedColumns[TimelineHeader[c]]:
					sums[c] += v
				case !known[c] || v > sums[c]:
					sums[c] = v
				}
				known[c] = true
			}
		}
		out[0] = strconv.FormatFloat(t, 'f', 3, 64)
		for c := 1; c < len(out); c++ {
			out[c] = ""
			if known[c] || summedColumns[TimelineHeader[c]] {
				out[c] = strconv.FormatInt(sums[c], 10)
			}
		}
		if err := cw.Write(out); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

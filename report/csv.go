package report

import (
	"encoding/csv"
	"io"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/connlimit/connlimit/loadgen"
)

// CSVHeader is the per-attempt report's header; scripts depend on it.
var CSVHeader = []string{"seq", "fd", "local_ip", "local_port", "remote_ip", "remote_port",
	"outcome", "errno", "connect_us", "greeting_us", "target_seq", "http_status", "reason"}

// SegmentHeader are the columns the per-attempt CSV gains when a payload was sent.
var SegmentHeader = []string{"bytes_sent", "bytes_received", "mss", "data_segs_out", "data_segs_in", "retrans"}

// WriteCSV writes one row per attempt. A value that does not apply to an
// attempt (no descriptor, never connected, no greeting) is left empty.
// Attempts with TCP_INFO readings add the segment columns. remotes are the
// destinations, indexed by Result.Dst.
func WriteCSV(w io.Writer, remotes []netip.AddrPort, attempts loadgen.Attempts) error {
	cw := csv.NewWriter(w)
	header := CSVHeader
	withSegs := attempts.Segs != nil
	if withSegs {
		header = append(slices.Clip(CSVHeader), SegmentHeader...)
	}
	if err := cw.Write(header); err != nil {
		return err
	}
	rips, rports := make([]string, len(remotes)), make([]string, len(remotes))
	for i, r := range remotes {
		rips[i], rports[i] = r.Addr().String(), strconv.Itoa(int(r.Port()))
	}
	row := make([]string, len(header))
	for i := range attempts.Len() {
		a := attempts.At(i)
		r := &a.Result
		row[0] = strconv.FormatUint(uint64(r.Seq), 10)
		row[1] = ifInt(r.FD >= 0, int64(r.FD))
		row[2], row[3] = "", ""
		if l := r.Local(); l.IsValid() {
			row[2], row[3] = l.Addr().String(), strconv.Itoa(int(l.Port()))
		}
		row[4], row[5] = "", ""
		if d := int(r.Dst); d < len(remotes) {
			row[4], row[5] = rips[d], rports[d]
		}
		row[6] = r.Outcome.String()
		row[7] = ErrnoName(r.Errno)
		row[8] = ifInt(r.Connect > 0, micros(r.Connect))
		row[9] = ifInt(r.Greeting > 0, micros(r.Greeting))
		row[10] = ifInt(r.TargetSeq > 0, int64(r.TargetSeq))
		row[11] = ifInt(r.Status > 0, int64(r.Status))
		row[12] = a.Reason
		if withSegs {
			sg := a.Seg
			ok := sg.MSS > 0
			for j, v := range []int64{int64(sg.BytesSent), int64(sg.BytesReceived), int64(sg.MSS), int64(sg.DataSegsOut), int64(sg.DataSegsIn), int64(sg.Retrans)} {
				row[13+j] = ifInt(ok, v)
			}
		}
		if err := cw.Write(row); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

func ifInt(ok bool, v int64) string {
	if !ok {
		return ""
	}
	return strconv.FormatInt(v, 10)
}

func micros(d time.Duration) int64 { return int64(d / time.Microsecond) }

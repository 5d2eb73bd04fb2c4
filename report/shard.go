package report

import (
	"fmt"
	"math"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// ShardInfo is what makes a run's summary one shard of a larger run
// (run --shard I/S): enough for merge to check that the shards belong
// together and to combine them exactly.
type ShardInfo struct {
	// Run is the same for every shard of one run: a digest of the flags
	// they share (target, probe, connections, rate, shards, --start-at).
	Run   string `json:"run"`
	Index int    `json:"index"`
	Count int    `json:"count"`
	Host  string `json:"host"`
	// TotalConnections and TotalRate are the whole run's; this shard's
	// shares are the summary's requested and its rate.
	TotalConnections int     `json:"total_connections"`
	TotalRate        float64 `json:"total_rate"`
	// StartAt is --start-at; LateS how much later than it the ramp began
	// (0 when on time or without --start-at).
	StartAt string  `json:"start_at,omitempty"`
	LateS   float64 `json:"late_s"`
	// RampStart and RampEnd are the wall-clock instants of the first
	// attempt and of the last completed handshake (RFC 3339, nanoseconds).
	RampStart string `json:"ramp_start"`
	RampEnd   string `json:"ramp_end"`
	// HoldEnd is when it began closing its connections (RFC 3339): a shard
	// that closes before another's ramp ends frees the target's slots for
	// that one's connections.
	HoldEnd string `json:"hold_end"`
	// ConnectLatencyHDR is every handshake's time in microseconds as an
	// HdrHistogram (V2 compressed, base64; 3 significant digits: a merged
	// percentile is within 0.1% of the pooled samples' own).
	ConnectLatencyHDR string `json:"connect_latency_hdr"`
	// CSV is the shard's --csv file by name, and its rows: merge --csv
	// reads it beside the shard's JSON.
	CSV     string `json:"csv,omitempty"`
	CSVRows int    `json:"csv_rows,omitempty"`
	// Timeline is its --timeline file by name, whose elapsed_s counts from
	// Began (RFC 3339) every IntervalS: merge --timeline puts the shards'
	// on one clock.
	Timeline  string  `json:"timeline,omitempty"`
	Began     string  `json:"began"`
	IntervalS float64 `json:"interval_s"`
}

// Histogram bounds: 1 µs to an hour, 3 significant digits.
const (
	hdrLowest  = 1
	hdrHighest = 3_600_000_000
	hdrDigits  = 3
)

// NewLatencyHist is an empty connect-latency histogram, in microseconds.
func NewLatencyHist() *hdrhistogram.Histogram {
	return hdrhistogram.New(hdrLowest, hdrHighest, hdrDigits)
}

// record adds a handshake time, clamped to the histogram's range.
func record(h *hdrhistogram.Histogram, d time.Duration) {
	_ = h.RecordValue(min(max(micros(d), hdrLowest), hdrHighest))
}

// EncodeHist is h in HdrHistogram's V2 compressed form, base64.
func EncodeHist(h *hdrhistogram.Histogram) (string, error) {
	b, err := h.Encode(hdrhistogram.V2CompressedEncodingCookieBase)
	return string(b), err
}

// DecodeHist reads EncodeHist's form.
func DecodeHist(s string) (*hdrhistogram.Histogram, error) {
	h, err := hdrhistogram.Decode([]byte(s))
	if err != nil {
		return nil, fmt.Errorf("connect_latency_hdr: %w", err)
	}
	return h, nil
}

// HistLatency is the percentiles of h by the same nearest rank as a run's
// own (the ceil(n·p/100)-th smallest), each the highest value equivalent
// to that sample's bucket; max is given exactly by the caller.
func HistLatency(h *hdrhistogram.Histogram, maxUS int64) Latency {
	n := h.TotalCount()
	if n == 0 {
		return Latency{}
	}
	ranks := []int64{(n*50 + 99) / 100, (n*90 + 99) / 100, (n*99 + 99) / 100}
	out := make([]int64, len(ranks))
	var seen int64
	k := 0
	for _, b := range h.Distribution() {
		if b.Count == 0 {
			continue
		}
		seen += b.Count
		for k < len(ranks) && seen >= ranks[k] {
			out[k] = min(b.To, maxUS)
			k++
		}
		if k == len(ranks) {
			break
		}
	}
	return Latency{P50: out[0], P90: out[1], P99: out[2], Max: maxUS}
}

// HistPrecision is the relative error of a percentile read from a latency
// histogram: 10^-digits.
func HistPrecision() float64 { return math.Pow(10, -hdrDigits) }

// FormatTime is the shard's instants: RFC 3339 in UTC with nanoseconds.
func FormatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

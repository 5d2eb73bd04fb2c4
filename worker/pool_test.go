package worker

import (
	"net/netip"
	"testing"
	"time"

	"github.com/connlimit/connlimit/loadgen"
)

func TestTargetsOf(t *testing.T) {
	for _, tc := range []struct {
		i, n, targets int
		want          []int
	}{
		{0, 1, 1, []int{0}},
		{1, 3, 3, []int{1}},    // one target each, as the C yardstick pairs them
		{1, 2, 4, []int{1, 3}}, // targets divide among workers
		{3, 4, 2, []int{1}},    // workers divide among targets
		{0, 3, 2, []int{0, 1}}, // neither: every worker to every target
	} {
		got := targetsOf(tc.i, tc.n, tc.targets)
		if len(got) != len(tc.want) {
			t.Errorf("targetsOf(%d, %d, %d) = %v, want %v", tc.i, tc.n, tc.targets, got, tc.want)
			continue
		}
		for k := range got {
			if got[k] != tc.want[k] {
				t.Errorf("targetsOf(%d, %d, %d) = %v, want %v", tc.i, tc.n, tc.targets, got, tc.want)
			}
		}
	}
}

// The merge puts every worker's attempts in one list by start time, numbers
// them, maps each destination to the run's, and keeps reasons and segment
// readings with their attempt; a worker without readings (one that died)
// leaves zero readings, not a shifted list.
func TestMerge(t *testing.T) {
	ms := time.Millisecond
	parts := []part{
		{w: 0, res: loadgen.Attempts{
			Results: []loadgen.Result{{Start: 1 * ms, Dst: 0, Outcome: loadgen.Served}, {Start: 4 * ms, Dst: 1, Outcome: loadgen.Closed}},
			Reasons: map[int32]string{1: "bye"},
			Segs:    []loadgen.SegInfo{{MSS: 1448}, {MSS: 1000}},
		}},
		{w: 2, res: loadgen.Attempts{ // died: no readings
			Results: []loadgen.Result{{Start: 2 * ms, Outcome: loadgen.Lost}, {Start: 4 * ms, Outcome: loadgen.Lost}},
		}},
	}
	dsts := map[int][]int{0: {0, 2}, 2: {1}}
	merged, from := merge(parts, func(w int) []int { return dsts[w] })
	res, reasons, segs := merged.Results, merged.Reasons, merged.Segs
	wantOutcome := []loadgen.Outcome{loadgen.Served, loadgen.Lost, loadgen.Closed, loadgen.Lost} // ties keep worker order
	wantDst := []uint16{0, 1, 2, 1}
	wantFrom := []uint16{0, 2, 0, 2}
	if len(res) != 4 || len(segs) != 4 {
		t.Fatalf("%d results, %d readings", len(res), len(segs))
	}
	for i, r := range res {
		if r.Seq != uint32(i+1) || r.Outcome != wantOutcome[i] || r.Dst != wantDst[i] || from[i] != wantFrom[i] {
			t.Errorf("merged %d: seq %d %v dst %d from %d", i, r.Seq, r.Outcome, r.Dst, from[i])
		}
	}
	if len(reasons) != 1 || reasons[2] != "bye" {
		t.Errorf("reasons %v, want bye at 2", reasons)
	}
	if segs[0].MSS != 1448 || segs[1].MSS != 0 || segs[2].MSS != 1000 {
		t.Errorf("readings %+v", segs)
	}
}

// Each worker gets its own source addresses, or all of them when there are
// fewer addresses than workers.
func TestShareOf(t *testing.T) {
	a := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	four := []netip.Addr{a("127.0.0.2"), a("127.0.0.3"), a("127.0.0.4"), a("127.0.0.5")}
	if got := shareOf(four, 1, 2); len(got) != 2 || got[0] != four[2] {
		t.Errorf("worker 1 of 2: %v", got)
	}
	if got := shareOf(four[:1], 2, 3); len(got) != 1 {
		t.Errorf("one address, three workers: %v", got)
	}
	if got := shareOf(nil, 0, 3); len(got) != 0 {
		t.Errorf("no sources: %v", got)
	}
}

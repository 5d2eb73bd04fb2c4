package report

import (
	"errors"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/connlimit/connlimit/loadgen"
)

// shardOf builds shard k of n: a summary of attempts whose handshakes
// took the given times, as a shard's run would write it.
func shardOf(t testing.TB, k, n int, lat []time.Duration, limit string, at int64, epoch time.Time) Summary {
	t.Helper()
	a := loadgen.Attempts{}
	for i, d := range lat {
		a.Results = append(a.Results, loadgen.Result{Seq: uint32(i + 1), Outcome: loadgen.Served, Start: time.Duration(i) * time.Millisecond, Connect: d})
	}
	s := Build(Input{Requested: len(lat), Attempts: a, Probe: "connect"})
	s.FirstLimit, s.FirstLimitAt = limit, at
	if limit != LimitNone {
		s.FirstLimitValue = limit + " in shard"
	}
	enc, err := EncodeHist(s.LatencyHistogram())
	if err != nil {
		t.Fatal(err)
	}
	s.Shard = &ShardInfo{Run: "r1", Index: k, Count: n, Host: "h", ConnectLatencyHDR: enc}
	if len(lat) > 0 {
		var last time.Duration
		for _, r := range a.Results {
			last = max(last, r.Start+r.Connect)
		}
		s.Shard.RampStart, s.Shard.RampEnd = FormatTime(epoch), FormatTime(epoch.Add(last))
		s.Shard.HoldEnd = FormatTime(epoch.Add(last + time.Second))
	}
	return s
}

func randLat(r *rand.Rand, n int) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = time.Duration(50+r.ExpFloat64()*2000) * time.Microsecond
	}
	return out
}

func names(n int) []string {
	s := make([]string, n)
	for i := range s {
		s[i] = "s" + string(rune('0'+i))
	}
	return s
}

// within says the merged percentile is the pooled samples' own to the
// histogram's precision (and the microsecond both are rounded to).
func within(got, want int64) bool {
	d := got - want
	return d >= -1 && float64(d) <= float64(want)*HistPrecision()+1
}

func TestMergeProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	epoch := time.Date(2026, 12, 2, 15, 0, 0, 0, time.UTC)
	lats := [][]time.Duration{randLat(r, 1000), randLat(r, 777), randLat(r, 5), randLat(r, 0)}
	var shards []Summary
	for k, l := range lats {
		shards = append(shards, shardOf(t, k, len(lats), l, LimitNone, 0, epoch.Add(time.Duration(k)*time.Millisecond)))
	}

	t.Run("the pooled samples' percentiles", func(t *testing.T) {
		m, err := Merge(shards, names(len(shards)))
		if err != nil {
			t.Fatal(err)
		}
		var pool []time.Duration
		for _, l := range lats {
			pool = append(pool, l...)
		}
		whole := Build(Input{Attempts: attemptsOf(pool)})
		if m.Attempted != len(pool) || m.Outcomes["served"] != len(pool) || m.Generator.Connected != len(pool) {
			t.Errorf("counts %d %v: want %d", m.Attempted, m.Outcomes, len(pool))
		}
		g, w := m.ConnectLatencyUS, whole.ConnectLatencyUS
		if !within(g.P50, w.P50) || !within(g.P90, w.P90) || !within(g.P99, w.P99) || g.Max != w.Max {
			t.Errorf("merged %+v, pooled %+v: want within %.1f%%", g, w, 100*HistPrecision())
		}
		// The rate is over the union of the ramps: the earliest start to the latest end.
		var end time.Duration
		for k, l := range lats {
			for i, d := range l {
				end = max(end, time.Duration(k)*time.Millisecond+time.Duration(i)*time.Millisecond+d)
			}
		}
		if span := m.Generator.ConnectSpanS; span != end.Seconds() {
			t.Errorf("span %v s: want %v, the earliest start to the latest handshake", span, end.Seconds())
		}
	})
	t.Run("one shard gives itself", func(t *testing.T) {
		one := shardOf(t, 0, 1, lats[0], LimitTargetFD, 321, epoch)
		m, err := Merge([]Summary{one}, names(1))
		if err != nil {
			t.Fatal(err)
		}
		if m.Attempted != one.Attempted || m.FirstLimit != one.FirstLimit || m.FirstLimitAt != one.FirstLimitAt ||
			!within(m.ConnectLatencyUS.P99, one.ConnectLatencyUS.P99) || m.ConnectRatePerS != one.ConnectRatePerS {
			t.Errorf("merged %+v\nshard %+v", m, one)
		}
	})
	t.Run("order does not matter", func(t *testing.T) {
		a, _ := Merge(shards, names(4))
		rev := slices.Clone(shards)
		slices.Reverse(rev)
		b, _ := Merge(rev, names(4))
		if a.ConnectLatencyUS != b.ConnectLatencyUS || a.Attempted != b.Attempted || a.ConnectRatePerS != b.ConnectRatePerS || a.FirstLimit != b.FirstLimit {
			t.Errorf("%+v\n%+v", a, b)
		}
	})
	t.Run("more shards than connections", func(t *testing.T) {
		// Shard 3 made no attempt: it counts, and has no ramp.
		m, err := Merge(shards, names(4))
		if err != nil || len(m.Shards) != 4 || m.Shards[3].Attempted != 0 || m.FirstLimit != LimitNone {
			t.Errorf("%v %+v", err, m.Shards)
		}
	})
}

func attemptsOf(lat []time.Duration) loadgen.Attempts {
	a := loadgen.Attempts{}
	for i, d := range lat {
		a.Results = append(a.Results, loadgen.Result{Seq: uint32(i + 1), Outcome: loadgen.Served, Connect: d})
	}
	return a
}

func TestMergeVerdict(t *testing.T) {
	epoch := time.Now()
	lat := []time.Duration{time.Millisecond, 2 * time.Millisecond}
	mk := func(limits ...string) []Summary {
		var out []Summary
		for k, l := range limits {
			out = append(out, shardOf(t, k, len(limits), lat, l, 1, epoch))
		}
		return out
	}
	for _, tc := range []struct {
		name   string
		shards []Summary
		limit  string
		at     int64
		value  string
	}{
		{"the target's word in any shard", mk(LimitNone, LimitTargetFD, LimitNone), LimitTargetFD, 2 + 1 + 2, "target-fd-limit in shard"},
		{"generator-limited shards named", mk(LimitNone, LimitNone, LimitClientFD, LimitNone, LimitNone, LimitClientFD), LimitClientFD, 4*2 + 2, "generator-limited in shards 2 and 5"},
		{"the target's side before the generators'", mk(LimitClientFD, LimitTargetClosed), LimitTargetClosed, 2 + 1, "target-closed in shard"},
		{"disagreeing target words all listed", mk(LimitTargetFD, LimitTargetFD, LimitTargetClosed, LimitAcceptQueueFull), LimitTargetFD, 1 + 1 + 2 + 2,
			"the shards disagree: target-fd-limit in shards 0 and 1, accept-queue-full in shard 3, target-closed in shard 2"},
		{"none", mk(LimitNone, LimitNone), LimitNone, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Merge(tc.shards, names(len(tc.shards)))
			if err != nil {
				t.Fatal(err)
			}
			if m.FirstLimit != tc.limit || m.FirstLimitAt != tc.at || !strings.Contains(m.FirstLimitValue, tc.value) {
				t.Errorf("%s at %d, %q: want %s at %d, %q", m.FirstLimit, m.FirstLimitAt, m.FirstLimitValue, tc.limit, tc.at, tc.value)
			}
		})
	}
}

// A shard that closed before another's ramp ended is named: the target
// could reuse its slots, and the sum may exceed what it holds at once.
func TestMergeReleasedEarly(t *testing.T) {
	epoch := time.Now()
	lat := []time.Duration{time.Millisecond}
	a, b := shardOf(t, 0, 2, lat, LimitNone, 0, epoch), shardOf(t, 1, 2, lat, LimitNone, 0, epoch.Add(500*time.Millisecond))
	m, _ := Merge([]Summary{a, b}, names(2))
	if m.Merge.ReleasedEarly != "" {
		t.Errorf("holds overlapping every ramp: %q", m.Merge.ReleasedEarly)
	}
	b = shardOf(t, 1, 2, lat, LimitNone, 0, epoch.Add(3*time.Second))
	m, _ = Merge([]Summary{a, b}, names(2))
	if !strings.Contains(m.Merge.ReleasedEarly, "shard 0 closed its connections 2s before shard 1's ramp ended") {
		t.Errorf("shard 1 ramping 2 s after shard 0 closed: %q", m.Merge.ReleasedEarly)
	}
}

func TestMergeRefuses(t *testing.T) {
	epoch := time.Now()
	lat := []time.Duration{time.Millisecond}
	s := func(k, n int, run string) Summary {
		x := shardOf(t, k, n, lat, LimitNone, 0, epoch)
		x.Shard.Run = run
		return x
	}
	plain := Build(Input{Attempts: attemptsOf(lat)})
	for _, tc := range []struct {
		name   string
		shards []Summary
		want   string
	}{
		{"missing", []Summary{s(0, 4, "r"), s(1, 4, "r"), s(3, 4, "r")}, "shard 2 of 4 missing"},
		{"several missing", []Summary{s(1, 4, "r")}, "shards 0, 2 and 3 of 4 missing"},
		{"duplicate", []Summary{s(0, 2, "r"), s(1, 2, "r"), s(1, 2, "r")}, "shard 1 given twice (s1 and s2)"},
		{"another run", []Summary{s(0, 2, "r"), s(1, 2, "q")}, "s1: shard 1/2 of run q, not of run r"},
		{"another shard count", []Summary{s(0, 2, "r"), s(1, 3, "r")}, "s1: shard 1/3 of run r, not of run r (2 shards)"},
		{"not a shard", []Summary{s(0, 1, "r"), plain}, "s1: not a shard's summary"},
		{"none", nil, "no shard summaries given"},
		{"another schema version", func() []Summary { x := s(0, 1, "r"); x.SchemaVersion = 2; return []Summary{x} }(), "s0: schema_version 2, this connlimit merges 1"},
		// Counts that do not add up: the merged report would not either.
		{"a negative count", edited(s(0, 2, "r"), func(x *Summary) { x.Outcomes["refused"] = -1; x.Outcomes["served"] = 2 }), "s1: outcome refused is -1, below 0"},
		{"an unknown outcome", edited(s(0, 2, "r"), func(x *Summary) { x.Outcomes["dropped"] = 0 }), `s1: outcome "dropped" is none of connlimit's`},
		{"outcomes short of the attempts", edited(s(0, 2, "r"), func(x *Summary) { x.Attempted, x.Requested = 2, 2 }), "s1: the outcomes add up to 1, not to its 2 attempts"},
		{"more attempts than asked", edited(s(0, 2, "r"), func(x *Summary) { x.Requested = 0 }), "s1: attempted 1 of requested 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Merge(tc.shards, names(len(tc.shards)))
			var me *MergeError
			if !errors.As(err, &me) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%v: want a MergeError with %q", err, tc.want)
			}
			if counts := strings.Contains(tc.want, "outcome") || strings.Contains(tc.want, "attempted"); counts && strings.Contains(err.Error(), "missing") {
				t.Errorf("%v: a shard refused for itself is not also missing", err)
			}
		})
	}
}

// edited is a good shard 0 and shard 1 of two changed by edit, which must
// be refused on its own: "shard 1 missing" is not the problem.
func edited(good Summary, edit func(*Summary)) []Summary {
	bad := good
	bad.Shard = &ShardInfo{}
	*bad.Shard = *good.Shard
	bad.Shard.Index = 1
	bad.Outcomes = maps.Clone(good.Outcomes)
	edit(&bad)
	return []Summary{good, bad}
}

// BenchmarkMerge100 merges 100 shard summaries of 10,000 handshakes each,
// as decoded from their JSON: the work is in the histograms, whose size
// does not grow with the connections.
func BenchmarkMerge100(b *testing.B) {
	r := rand.New(rand.NewPCG(3, 4))
	epoch := time.Now()
	shards := make([]Summary, 100)
	for k := range shards {
		shards[k] = shardOf(b, k, len(shards), randLat(r, 10_000), LimitNone, 0, epoch)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Merge(shards, names(len(shards))); err != nil {
			b.Fatal(err)
		}
	}
}

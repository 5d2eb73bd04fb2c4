package report

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/connlimit/connlimit/loadgen"
)

// ShardRow is one shard's line in a merged report.
type ShardRow struct {
	Index        int            `json:"index"`
	Host         string         `json:"host"`
	Requested    int            `json:"requested"`
	Attempted    int            `json:"attempted"`
	Outcomes     map[string]int `json:"outcomes"`
	FirstLimit   string         `json:"first_limit"`
	FirstLimitAt int64          `json:"first_limit_at"`
	RampStart    string         `json:"ramp_start"`
	RampEnd      string         `json:"ramp_end"`
	LateS        float64        `json:"late_s"`
	// StartOffsetS is its ramp's start after the earliest shard's: clock
	// skew between hosts and lateness together.
	StartOffsetS float64 `json:"start_offset_s"`
}

// ShardVerdict is the shards that met one limit.
type ShardVerdict struct {
	Limit  string `json:"limit"`
	Shards []int  `json:"shards"`
}

// MergeInfo is how a merged summary was made.
type MergeInfo struct {
	Run   string `json:"run"`
	Count int    `json:"count"`
	// Verdicts lists every limit the shards met, each with its shards: more
	// than one target-side word means they disagree.
	Verdicts []ShardVerdict `json:"verdicts"`
	// StartSpreadS is the latest shard's ramp start after the earliest's.
	StartSpreadS float64 `json:"start_spread_s"`
	// LatencyPrecision is the relative error of the merged percentiles.
	LatencyPrecision float64 `json:"latency_precision"`
	// ReleasedEarly says a shard closed its connections before another's
	// ramp had ended: the target could then serve that one's from its
	// queue, and the sum may exceed what it holds at once. "" when not.
	ReleasedEarly string `json:"released_early,omitempty"`
}

// MergeError is a set of shards that do not make one run: missing,
// duplicate, or from another run.
type MergeError struct{ Problems []string }

func (e *MergeError) Error() string {
	return "merge: " + strings.Join(e.Problems, "; ")
}

// generatorSide says a limit was the generator's own, met on its host: in
// a shard it says nothing of the target.
func generatorSide(w string) bool { return clientSide[w] || w == LimitGeneratorDied }

// Merge combines the summaries of the S shards of one run into the
// summary one run would have written, by the rules of docs/scale.md:
// counts summed; the rate over the union of the ramps; percentiles from
// the merged histograms; the verdict from target-side evidence in any
// shard. names label the inputs in errors.
func Merge(shards []Summary, names []string) (Summary, error) {
	if len(shards) == 0 {
		return Summary{}, &MergeError{[]string{"no shard summaries given"}}
	}
	var problems []string
	byIndex := map[int]int{}
	first := -1
	for i := range shards {
		sh := shards[i].Shard
		switch {
		case sh == nil:
			problems = append(problems, names[i]+": not a shard's summary (run with --shard or --shards)")
			continue
		case shards[i].SchemaVersion != SchemaVersion:
			problems = append(problems, fmt.Sprintf("%s: schema_version %d, this connlimit merges %d: merge with the connlimit that wrote it", names[i], shards[i].SchemaVersion, SchemaVersion))
			continue
		case first < 0:
			first = i
		}
		f := shards[first].Shard
		switch {
		case sh.Run != f.Run || sh.Count != f.Count:
			problems = append(problems, fmt.Sprintf("%s: shard %d/%d of run %s, not of run %s (%d shards) as %s", names[i], sh.Index, sh.Count, sh.Run, f.Run, f.Count, names[first]))
			continue
		case sh.Index < 0 || sh.Index >= sh.Count:
			problems = append(problems, fmt.Sprintf("%s: shard index %d outside 0-%d", names[i], sh.Index, sh.Count-1))
			continue
		}
		if j, dup := byIndex[sh.Index]; dup {
			problems = append(problems, fmt.Sprintf("shard %d given twice (%s and %s)", sh.Index, names[j], names[i]))
			continue
		}
		byIndex[sh.Index] = i
		if p := accounting(&shards[i]); p != "" {
			problems = append(problems, names[i]+": "+p)
		}
	}
	if first >= 0 {
		var missing []int
		for k := range shards[first].Shard.Count {
			if _, ok := byIndex[k]; !ok {
				missing = append(missing, k)
			}
		}
		if len(missing) > 0 {
			problems = append(problems, fmt.Sprintf("%s of %d missing (a shard that died writes no summary)", shardList(missing), shards[first].Shard.Count))
		}
	}
	if len(problems) > 0 {
		return Summary{}, &MergeError{problems}
	}
	in := make([]*Summary, len(byIndex))
	for k, i := range byIndex {
		in[k] = &shards[i]
	}
	return merge(in)
}

// accounting is what is wrong with a shard's counts, or "": every outcome
// one of connlimit's, none negative, and together its attempts, as a run
// writes them. A merged report that did not add up would be wrong in a way
// nobody reading it could see.
func accounting(s *Summary) string {
	words := outcomeWords()
	total := 0
	for _, name := range slices.Sorted(maps.Keys(s.Outcomes)) {
		n := s.Outcomes[name]
		switch {
		case !slices.Contains(words, name):
			return fmt.Sprintf("outcome %q is none of connlimit's (%s)", name, strings.Join(words, ", "))
		case n < 0:
			return fmt.Sprintf("outcome %s is %d, below 0", name, n)
		}
		total += n
	}
	switch {
	case s.Attempted < 0 || s.Requested < 0 || s.Attempted > s.Requested:
		return fmt.Sprintf("attempted %d of requested %d: want 0 <= attempted <= requested", s.Attempted, s.Requested)
	case total != s.Attempted:
		return fmt.Sprintf("the outcomes add up to %d, not to its %d attempts: the file was edited or cut", total, s.Attempted)
	}
	return ""
}

func outcomeWords() []string {
	var w []string
	for _, o := range loadgen.Outcomes() {
		w = append(w, o.String())
	}
	return w
}

func merge(in []*Summary) (Summary, error) {
	f := in[0]
	out := Summary{SchemaVersion: f.SchemaVersion, TargetAddr: f.TargetAddr, Probe: f.Probe, Limits: f.Limits,
		Outcomes: map[string]int{}, Reasons: []Reason{}, Gates: []GateResult{}, TargetProcesses: []Process{}}
	m := &MergeInfo{Run: f.Shard.Run, Count: f.Shard.Count, LatencyPrecision: HistPrecision()}
	hist := NewLatencyHist()
	reasons := map[[2]string]int{}
	var earliest, latest time.Time
	var errs []string
	for k, s := range in {
		out.Requested += s.Requested
		out.Attempted += s.Attempted
		for o, n := range s.Outcomes {
			out.Outcomes[o] += n
		}
		out.Generator.Connected += s.Generator.Connected
		out.Generator.SourceAddrs += s.Generator.SourceAddrs
		out.Interrupted = out.Interrupted || s.Interrupted
		out.DurationS = max(out.DurationS, s.DurationS)
		out.ConnectLatencyUS.Max = max(out.ConnectLatencyUS.Max, s.ConnectLatencyUS.Max)
		if s.Error != "" {
			errs = append(errs, fmt.Sprintf("shard %d: %s", k, s.Error))
		}
		if out.Died == nil && s.Died != nil {
			out.Died = s.Died
		}
		for _, r := range s.Reasons {
			reasons[[2]string{r.Outcome, r.Reason}] += r.Count
		}
		h, err := DecodeHist(s.Shard.ConnectLatencyHDR)
		if err != nil {
			return Summary{}, &MergeError{[]string{fmt.Sprintf("shard %d: %v", k, err)}}
		}
		hist.Merge(h)
		if s.Shard.RampStart != "" { // a shard that made no attempt has no ramp
			start, err1 := time.Parse(time.RFC3339Nano, s.Shard.RampStart)
			end, err2 := time.Parse(time.RFC3339Nano, s.Shard.RampEnd)
			if err1 != nil || err2 != nil {
				return Summary{}, &MergeError{[]string{fmt.Sprintf("shard %d: ramp_start %q, ramp_end %q: want RFC 3339 times", k, s.Shard.RampStart, s.Shard.RampEnd)}}
			}
			if earliest.IsZero() || start.Before(earliest) {
				earliest = start
			}
			if end.After(latest) {
				latest = end
			}
		}
		out.Shards = append(out.Shards, ShardRow{Index: k, Host: s.Shard.Host, Requested: s.Requested, Attempted: s.Attempted,
			Outcomes: s.Outcomes, FirstLimit: s.FirstLimit, FirstLimitAt: s.FirstLimitAt,
			RampStart: s.Shard.RampStart, RampEnd: s.Shard.RampEnd, LateS: s.Shard.LateS})
	}
	out.Error = strings.Join(errs, "; ")
	for i := range out.Shards {
		if out.Shards[i].RampStart == "" {
			continue
		}
		start, _ := time.Parse(time.RFC3339Nano, out.Shards[i].RampStart)
		out.Shards[i].StartOffsetS = start.Sub(earliest).Seconds()
		m.StartSpreadS = max(m.StartSpreadS, out.Shards[i].StartOffsetS)
	}
	m.ReleasedEarly = releasedEarly(in)
	span := latest.Sub(earliest)
	out.Generator.ConnectSpanS = span.Seconds()
	if span > 0 {
		out.ConnectRatePerS = float64(out.Generator.Connected) / span.Seconds()
	}
	out.ConnectLatencyUS = HistLatency(hist, out.ConnectLatencyUS.Max)
	out.latency = hist
	for k, n := range reasons {
		out.Reasons = append(out.Reasons, Reason{Outcome: k[0], Reason: k[1], Count: n})
	}
	slices.SortFunc(out.Reasons, func(a, b Reason) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), strings.Compare(a.Reason, b.Reason))
	})
	out.Reasons = out.Reasons[:min(len(out.Reasons), 5)]
	mergeVerdict(&out, m, in)
	out.Merge = m
	return out, nil
}

// mergeVerdict takes the limit the most shards met on the target's side
// (the lowest shard first on a tie), else the generators' own; its count
// adds each shard's count for that limit, or its served connections where
// it met another or none.
func mergeVerdict(out *Summary, m *MergeInfo, in []*Summary) {
	by := map[string][]int{}
	for k, s := range in {
		by[s.FirstLimit] = append(by[s.FirstLimit], k)
	}
	for _, w := range slices.Sorted(maps.Keys(by)) {
		m.Verdicts = append(m.Verdicts, ShardVerdict{Limit: w, Shards: by[w]})
	}
	pick := func(side func(string) bool) string {
		best := ""
		for w, ks := range by {
			if !side(w) {
				continue
			}
			if best == "" || len(ks) > len(by[best]) || (len(ks) == len(by[best]) && ks[0] < by[best][0]) {
				best = w
			}
		}
		return best
	}
	onTarget := func(w string) bool { return w != LimitNone && !generatorSide(w) }
	w := pick(onTarget)
	if w == "" {
		w = pick(generatorSide)
	}
	if w == "" {
		out.FirstLimit = LimitNone
		return
	}
	out.FirstLimit = w
	for _, s := range in {
		if s.FirstLimit == w {
			out.FirstLimitAt += s.FirstLimitAt
		} else {
			out.FirstLimitAt += int64(s.Outcomes["served"])
		}
	}
	src := in[by[w][0]]
	out.FirstLimitSetting, out.FirstLimitValue, out.FirstLimitFix = src.FirstLimitSetting, src.FirstLimitValue, src.FirstLimitFix
	out.Kernel, out.TargetProcesses, out.Segments = src.Kernel, src.TargetProcesses, src.Segments
	if generatorSide(w) {
		out.FirstLimitValue = fmt.Sprintf("generator-limited in %s: %s", shardList(by[w]), out.FirstLimitValue)
	}
	var others []string
	for _, v := range m.Verdicts {
		if v.Limit != w && onTarget(v.Limit) {
			others = append(others, fmt.Sprintf("%s in %s", v.Limit, shardList(v.Shards)))
		}
	}
	if len(others) > 0 {
		out.FirstLimitValue += fmt.Sprintf("; the shards disagree: %s in %s, %s", w, shardList(by[w]), strings.Join(others, ", "))
	}
}

// shardList names shards as a person would: "shard 3", "shards 2 and 5",
// "shards 0, 1 and 4".
func shardList(ks []int) string {
	s := make([]string, len(ks))
	for i, k := range ks {
		s[i] = strconv.Itoa(k)
	}
	switch len(s) {
	case 0:
		return "no shard"
	case 1:
		return "shard " + s[0]
	}
	return "shards " + strings.Join(s[:len(s)-1], ", ") + " and " + s[len(s)-1]
}

// releasedEarly names the first shard to close its connections when that
// was before the last shard's ramp ended.
func releasedEarly(in []*Summary) string {
	first, last := -1, -1
	var firstEnd, lastRamp time.Time
	for k, s := range in {
		if s.Shard.RampStart == "" {
			continue
		}
		hold, err1 := time.Parse(time.RFC3339Nano, s.Shard.HoldEnd)
		ramp, err2 := time.Parse(time.RFC3339Nano, s.Shard.RampEnd)
		if err1 != nil || err2 != nil {
			continue
		}
		if first < 0 || hold.Before(firstEnd) {
			first, firstEnd = k, hold
		}
		if last < 0 || ramp.After(lastRamp) {
			last, lastRamp = k, ramp
		}
	}
	if first < 0 || !firstEnd.Before(lastRamp) || first == last {
		return ""
	}
	return fmt.Sprintf("shard %d closed its connections %s before shard %d's ramp ended: the target could serve that one's from its queue, so the counts may exceed what it holds at once; give a --hold longer than the ramps' spread",
		first, lastRamp.Sub(firstEnd).Round(time.Millisecond), last)
}

package worker

import (
	"bytes"
	"cmp"
	"encoding/gob"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/connlimit/connlimit/loadgen"
)

func withLocal(a netip.AddrPort, r loadgen.Result) loadgen.Result {
	r.SetLocal(a)
	return r
}

// Every field a worker reports comes back as it was, whatever the address
// family, and a stream cut short or not a hand-off is an error, not a
// shorter list.
func TestHandoffRoundTrip(t *testing.T) {
	in := loadgen.Attempts{
		Results: []loadgen.Result{
			withLocal(netip.MustParseAddrPort("127.1.0.1:40000"), loadgen.Result{Seq: 1, FD: 7, Outcome: loadgen.Served, Dst: 3,
				Start: time.Millisecond, Connect: 150 * time.Microsecond, Greeting: 2 * time.Millisecond, TargetSeq: 99}),
			{Seq: 2, FD: -1, Outcome: loadgen.ClientFDLimit, Errno: syscall.EMFILE, Start: 2 * time.Millisecond},
			withLocal(netip.MustParseAddrPort("[::1]:65535"), loadgen.Result{Seq: 3, FD: 9, Outcome: loadgen.Closed, Status: 503, Demoted: true}),
			withLocal(netip.MustParseAddrPort("[::ffff:127.0.0.1]:1"), loadgen.Result{Seq: 4, FD: 10, Outcome: loadgen.Queued, Start: -time.Nanosecond}),
		},
		Reasons: map[int32]string{2: "503 Service Unavailable"},
		Segs:    []loadgen.SegInfo{{MSS: 1448}, {}, {MSS: 1000}, {}},
	}
	var buf bytes.Buffer
	if err := encodeAttempts(&buf, in); err != nil {
		t.Fatal(err)
	}
	whole := buf.Bytes()
	out, err := decodeAttempts(bytes.NewReader(whole))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Errorf("round trip:\n got %+v\nwant %+v", out, in)
	}
	for _, bad := range [][]byte{nil, whole[:5], whole[:8+recordSize+3], append([]byte("GOB!"), whole[4:]...)} {
		if a, err := decodeAttempts(bytes.NewReader(bad)); err == nil {
			t.Errorf("%d bytes decoded as %d attempts", len(bad), a.Len())
		}
	}
}

// The merge of sorted lists orders the attempts exactly as a stable sort by
// start time would, ties in worker order; a list out of order is sorted.
func TestMergeOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, unsorted := range []bool{false, true} {
		parts := make([]part, 7)
		for pi := range parts {
			at := time.Duration(0)
			for range rng.IntN(50) {
				at += time.Duration(rng.IntN(3)) // ties, within a worker and across
				parts[pi].res.Results = append(parts[pi].res.Results, loadgen.Result{Start: at, TargetSeq: uint32(pi)})
			}
		}
		if unsorted {
			r := parts[3].res.Results
			r[0].Start = 1 << 20
		}
		var want []ref
		for pi, pt := range parts {
			for i := range pt.res.Results {
				want = append(want, ref{pi, i})
			}
		}
		slices.SortStableFunc(want, func(a, b ref) int {
			return cmp.Compare(parts[a.part].res.Results[a.i].Start, parts[b.part].res.Results[b.i].Start)
		})
		if got := mergeOrder(parts); !slices.Equal(got, want) {
			t.Errorf("unsorted=%v: merge order differs from a stable sort:\n got %v\nwant %v", unsorted, got, want)
		}
	}
}

// A million attempts from 51 workers, handed over and merged, as at the
// end of a million-connection run: the hand-off against gob, which it
// replaced. go test -run '^$' -bench Handoff ./worker
func BenchmarkHandoff(b *testing.B) {
	const workers, each = 51, 19608
	parts := make([]part, workers)
	for w := range parts {
		rs := make([]loadgen.Result, each)
		for i := range rs {
			rs[i] = withLocal(netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 1, 0, 1}), uint16(i)), loadgen.Result{Seq: uint32(i + 1), FD: int32(i + 8),
				Outcome: loadgen.Served, Start: time.Duration(i*workers+w) * time.Microsecond, Connect: time.Millisecond})
		}
		parts[w] = part{res: loadgen.Attempts{Results: rs}, w: w}
	}
	own := make([][]int, workers)
	for w := range own {
		own[w] = []int{w}
	}
	dsts := func(w int) []int { return own[w] }
	for _, tc := range []struct {
		name string
		enc  func(*bytes.Buffer, loadgen.Attempts) error
		dec  func(*bytes.Buffer) (loadgen.Attempts, error)
	}{
		{"records", func(b *bytes.Buffer, a loadgen.Attempts) error { return encodeAttempts(b, a) },
			func(b *bytes.Buffer) (loadgen.Attempts, error) { return decodeAttempts(b) }},
		{"gob", func(b *bytes.Buffer, a loadgen.Attempts) error { return gob.NewEncoder(b).Encode(&a) },
			func(b *bytes.Buffer) (a loadgen.Attempts, err error) { err = gob.NewDecoder(b).Decode(&a); return }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			bufs := make([]bytes.Buffer, workers)
			for b.Loop() {
				got := make([]part, workers)
				for w := range parts {
					bufs[w].Reset()
					if err := tc.enc(&bufs[w], parts[w].res); err != nil {
						b.Fatal(err)
					}
					res, err := tc.dec(&bufs[w])
					if err != nil {
						b.Fatal(err)
					}
					got[w] = part{res, w}
				}
				if m, _ := merge(got, dsts); m.Len() != workers*each {
					b.Fatal(m.Len())
				}
			}
		})
	}
}

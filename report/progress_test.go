package report

import (
	"bytes"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/connlimit/connlimit/loadgen"
)

// lastFrame is the last non-blank frame a terminal progress bar drew.
func lastFrame(out string) string {
	frames := strings.Split(out, "\r")
	for i := len(frames) - 1; i >= 0; i-- {
		if f := strings.TrimSpace(frames[i]); f != "" {
			return frames[i]
		}
	}
	return ""
}

// One sample feeds the bar and its words; during the hold the line stays
// and counts down; at 80 columns (what the bar assumes when it cannot
// measure the terminal) no frame wraps.
func TestTerminalProgress(t *testing.T) {
	var out bytes.Buffer
	p := NewProgress(&out, 1500, 80)
	for _, tc := range []struct {
		s    Sample
		want []string
	}{
		{Sample{Gen: loadgen.Snapshot{Attempted: 501, Served: 501}}, []string{"(501/1500", "served 501"}},
		{Sample{Gen: loadgen.Snapshot{Attempted: 1200, Served: 900, Queued: 300}}, []string{"(1200/1500", "served 900 queued 300"}},
		{Sample{Gen: loadgen.Snapshot{Attempted: 1500, Served: 1500, Open: 1500}}, []string{"(1500/1500", "served 1500"}},
		{Sample{Gen: loadgen.Snapshot{Attempted: 1500, Served: 1500, Open: 1500}, HoldLeft: 800 * time.Millisecond}, []string{"(1500/1500", "hold 800ms left"}},
		{Sample{Gen: loadgen.Snapshot{Attempted: 1500, Served: 1500, Open: 1500}, HoldLeft: 300 * time.Millisecond}, []string{"hold 300ms left"}},
	} {
		out.Reset()
		p.Update(tc.s)
		if n := strings.Count(out.String(), "\r"); n != 1 {
			t.Errorf("one refresh drew %d frames: %q", n, out.String())
		}
		f := strings.TrimSuffix(lastFrame(out.String()), "\x1b[K")
		for _, w := range tc.want {
			if !strings.Contains(f, w) {
				t.Errorf("frame %q lacks %q", f, w)
			}
		}
		if n := utf8.RuneCountInString(strings.TrimRight(f, " ")); n > 80 {
			t.Errorf("frame of %d columns: %q", n, f)
		}
	}
}

// A terminal narrower than the bar's 80 columns gets the words and the
// count without the bar, cut to fit: a frame that wraps scrolls a new line
// at every refresh.
func TestNarrowTerminalProgress(t *testing.T) {
	for _, cols := range []int{79, 40, 20} {
		var out bytes.Buffer
		p := NewProgress(&out, 1500, cols)
		p.Update(Sample{Gen: loadgen.Snapshot{Attempted: 1200, Served: 900, Queued: 300}})
		f := strings.TrimSuffix(lastFrame(out.String()), "\x1b[K")
		if n := utf8.RuneCountInString(f); n >= cols {
			t.Errorf("%d columns: frame of %d: %q", cols, n, f)
		}
		if !strings.HasPrefix("served 900 queued 300 failed 0 (1200/1500)", f) || len(f) < 10 {
			t.Errorf("%d columns: frame %q, want the start of the words and the count", cols, f)
		}
	}
}

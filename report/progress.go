package report

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
)

// Progress shows the run while it goes: a bar when the writer is a
// terminal, otherwise a plain line at most once per PlainEvery, so CI logs
// stay readable. Each refresh shows one sample: the bar's count and the
// words beside it never disagree. During the hold the line stays and
// counts the hold down. Not safe for concurrent use: one sampler feeds it.
type Progress struct {
	w     io.Writer
	total int
	cols  int // the terminal's width; 0 when it is no terminal
	bar   *progressbar.ProgressBar
	every time.Duration
	last  time.Duration
}

// PlainEvery is how often a plain progress line is printed.
const PlainEvery = time.Second

// NewProgress returns a display for a run of total attempts. cols is the
// width of the terminal w is, 0 when w is none.
func NewProgress(w io.Writer, total int, cols int) *Progress {
	p := &Progress{w: w, total: total, cols: cols, every: PlainEvery, last: -PlainEvery}
	if cols >= barCols {
		// The bar renders into nothing, and each refresh writes its one
		// frame: drawn by Set64 and again by Describe, a frame would show a
		// new count beside old words. Full width fits the frame to 80
		// columns (what it assumes of a writer it cannot measure).
		p.bar = progressbar.NewOptions(total,
			progressbar.OptionSetWriter(io.Discard),
			progressbar.OptionSetVisibility(true),
			progressbar.OptionShowCount(),
			progressbar.OptionFullWidth(),
			progressbar.OptionSetDescription("connecting"))
	}
	return p
}

func line(s Sample, total int) string {
	g := s.Gen
	l := fmt.Sprintf("%5.1fs attempted %d/%d open %d served %d queued %d failed %d | target accepted %d fds %d accept errors %d",
		s.Elapsed.Seconds(), g.Attempted, total, g.Open, g.Served, g.Queued, g.Failed,
		s.TargetAccepted, s.TargetFDs, s.TargetAcceptErrors)
	if s.HoldLeft > 0 {
		l += " | holding, " + s.HoldLeft.Round(100*time.Millisecond).String() + " left"
	}
	return l
}

// barText is the short description beside the bar: it must leave the bar
// room at 80 columns.
func barText(s Sample) string {
	g := s.Gen
	if s.HoldLeft > 0 {
		return fmt.Sprintf("hold %s left: open %d served %d", s.HoldLeft.Round(100*time.Millisecond), g.Open, g.Served)
	}
	return fmt.Sprintf("served %d queued %d failed %d", g.Served, g.Queued, g.Failed)
}

// Update shows a new sample.
func (p *Progress) Update(s Sample) {
	switch {
	case p.bar != nil:
		// A full bar renders again only through its description: the count first.
		_ = p.bar.Set64(s.Gen.Attempted)
		p.bar.Describe(barText(s))
		fmt.Fprintf(p.w, "\r%s\x1b[K", strings.TrimLeft(p.bar.String(), "\r"))
		return
	case p.cols > 0:
		// No room for the bar: a frame wider than the terminal wraps, and
		// every refresh would then scroll a new line.
		fmt.Fprintf(p.w, "\r%s\x1b[K", fitCols(fmt.Sprintf("%s (%d/%d)", barText(s), s.Gen.Attempted, p.total), p.cols-1))
		return
	}
	if s.Elapsed-p.last >= p.every {
		p.last = s.Elapsed
		fmt.Fprintln(p.w, line(s, p.total))
	}
}

// barCols is the width the bar's frame is drawn for: progressbar's full
// width when it cannot measure its writer.
const barCols = 80

// fitCols cuts s to at most n characters.
func fitCols(s string, n int) string {
	r := []rune(s)
	if n < 1 {
		return ""
	}
	if len(r) > n {
		r = r[:n]
	}
	return string(r)
}

// Finish shows the final sample: a terminal's bar is cleared for the summary.
func (p *Progress) Finish(s Sample) {
	if p.cols > 0 {
		fmt.Fprint(p.w, "\r\x1b[K")
		return
	}
	fmt.Fprintln(p.w, line(s, p.total))
}

package report

import (
	"errors"
	"fmt"
	"image/color"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// Point is one timeline row, as the chart needs it.
type Point struct {
	Elapsed         float64 // seconds
	Open            float64
	Served          float64
	Queued          float64
	Failed          float64
	TargetFDs       float64
	TargetNoFile    float64 // 0 when unknown
	AcceptErrors    float64
	ConnectTimeouts float64
	// ForwarderFDs, ForwarderNoFile and ForwarderErrors are the forwarder's (0: none).
	ForwarderFDs, ForwarderNoFile, ForwarderErrors float64
	// AcceptQueue is the kernel's accept queue (sock_diag); HasQueue says whether it was read.
	AcceptQueue float64
	HasQueue    bool
}

// PointOf turns a sample into a chart point.
func PointOf(s Sample) Point {
	g := s.Gen
	p := Point{Elapsed: s.Elapsed.Seconds(), Open: float64(g.Open), Served: float64(g.Served), Queued: float64(g.Queued),
		Failed: float64(g.Failed), TargetFDs: float64(s.TargetFDs), TargetNoFile: float64(s.TargetNoFile),
		AcceptErrors: float64(s.TargetAcceptErrors), ConnectTimeouts: float64(g.ConnectTimeouts),
		ForwarderFDs: float64(s.ForwarderFDs), ForwarderNoFile: float64(s.ForwarderNoFile), ForwarderErrors: float64(s.ForwarderErrors)}
	if l := s.Kernel.Listener; l != nil {
		p.AcceptQueue, p.HasQueue = float64(l.AcceptQueue), true
	}
	return p
}

// Chart is what a plot shows besides the timeline.
type Chart struct {
	Title string // the verdict; derived from the timeline when empty
	// EMFILELabel and TimeoutLabel label the markers; defaults when empty.
	EMFILELabel, TimeoutLabel string
}

// Marks are the moments the chart marks, from the timeline: the first row
// with a failed accept and the first with a connect timeout (-1: none), and
// the target's soft limit (0: unknown).
func Marks(pts []Point) (emfileAt, timeoutAt, limit float64) {
	emfileAt, timeoutAt = -1, -1
	for _, p := range pts {
		if emfileAt < 0 && p.AcceptErrors > 0 {
			emfileAt = p.Elapsed
		}
		if timeoutAt < 0 && p.ConnectTimeouts > 0 {
			timeoutAt = p.Elapsed
		}
		limit = max(limit, p.TargetNoFile)
	}
	return emfileAt, timeoutAt, limit
}

var (
	colOpen    = color.RGBA{R: 31, G: 119, B: 180, A: 255}
	colServed  = color.RGBA{R: 44, G: 160, B: 44, A: 255}
	colQueued  = color.RGBA{R: 255, G: 127, B: 14, A: 255}
	colFailed  = color.RGBA{R: 214, G: 39, B: 40, A: 255}
	colFDs     = color.RGBA{R: 148, G: 103, B: 189, A: 255}
	colLimit   = color.RGBA{R: 90, G: 90, B: 90, A: 255}
	colMarker  = color.RGBA{R: 200, G: 0, B: 0, A: 255}
	colTimeout = color.RGBA{R: 140, G: 86, B: 75, A: 255}
	colFwd     = color.RGBA{R: 23, G: 190, B: 207, A: 255}
)

// WritePlot draws the run and writes it as "svg" or "png".
func WritePlot(w io.Writer, format string, pts []Point, c Chart) error {
	if len(pts) == 0 {
		return errors.New("plot: no timeline rows")
	}
	if pts[0].Elapsed > 0 {
		pts = append([]Point{{}}, pts...) // the run starts with nothing open
	}
	emfileAt, timeoutAt, limit := Marks(pts)
	p := plot.New()
	leg := plot.NewLegend() // drawn beside the chart, never over the data
	p.Title.Text = c.Title
	if p.Title.Text == "" {
		p.Title.Text = "connlimit run"
	}
	p.X.Label.Text = "time since the run started (s)"
	p.Y.Label.Text = "connections / descriptors"
	p.Y.Tick.Marker = countTicks{}
	p.X.Tick.Marker = countTicks{} // a long run's seconds stay short too: 86.4k
	p.Add(plotter.NewGrid())

	type series struct {
		name string
		col  color.Color
		dash []vg.Length
		get  func(Point) float64
	}
	// The kernel's accept queue shows waiting clients from the first sample;
	// the client's own "queued" only once its reply timeout has passed.
	queued := series{"queued (client: no reply yet)", colQueued, nil, func(p Point) float64 { return p.Queued }}
	for _, pt := range pts {
		if pt.HasQueue {
			queued = series{"accept queue (kernel)", colQueued, nil, func(p Point) float64 { return p.AcceptQueue }}
			break
		}
	}
	ymax := limit
	all := []series{
		{"open (client side)", colOpen, nil, func(p Point) float64 { return p.Open }},
		{"served", colServed, nil, func(p Point) float64 { return p.Served }},
		queued,
		{"failed", colFailed, nil, func(p Point) float64 { return p.Failed }},
		{"target descriptors in use", colFDs, []vg.Length{vg.Points(4), vg.Points(2)}, func(p Point) float64 { return p.TargetFDs }},
	}
	fwdLimit := 0.0
	for _, pt := range pts {
		fwdLimit = max(fwdLimit, pt.ForwarderNoFile)
	}
	if fwdLimit > 0 {
		all = append(all, series{"forwarder descriptors in use", colFwd, []vg.Length{vg.Points(1), vg.Points(2)}, func(p Point) float64 { return p.ForwarderFDs }})
		ymax = max(ymax, fwdLimit)
	}
	for _, s := range all {
		xys := make(plotter.XYs, len(pts))
		for i, pt := range pts {
			xys[i] = plotter.XY{X: pt.Elapsed, Y: s.get(pt)}
			ymax = max(ymax, xys[i].Y)
		}
		l, err := plotter.NewLine(xys)
		if err != nil {
			return fmt.Errorf("plot %s: %w", s.name, err)
		}
		l.LineStyle.Color, l.LineStyle.Width, l.LineStyle.Dashes = s.col, vg.Points(1.5), s.dash
		p.Add(l)
		leg.Add(s.name, l)
	}
	xmin, xmax := pts[0].Elapsed, pts[len(pts)-1].Elapsed
	if xmax <= xmin {
		xmax = xmin + 1
	}
	if ymax <= 0 {
		ymax = 1
	}
	// Headroom above the data for the marker labels.
	p.Y.Min, p.Y.Max = 0, ymax*1.3
	p.X.Min, p.X.Max = xmin, xmax

	if limit > 0 {
		l, _ := plotter.NewLine(plotter.XYs{{X: xmin, Y: limit}, {X: xmax, Y: limit}})
		l.LineStyle.Color, l.LineStyle.Width, l.LineStyle.Dashes = colLimit, vg.Points(1), []vg.Length{vg.Points(6), vg.Points(3)}
		p.Add(l)
		who := "target"
		if fwdLimit == limit {
			who = "target and forwarder"
		}
		leg.Add(fmt.Sprintf("%s soft limit (%s)", who, human(limit)), l)
	}
	if fwdLimit > 0 && fwdLimit != limit {
		l, _ := plotter.NewLine(plotter.XYs{{X: xmin, Y: fwdLimit}, {X: xmax, Y: fwdLimit}})
		l.LineStyle.Color, l.LineStyle.Width, l.LineStyle.Dashes = colFwd, vg.Points(1), []vg.Length{vg.Points(6), vg.Points(3)}
		p.Add(l)
		leg.Add(fmt.Sprintf("forwarder soft limit (%s)", human(fwdLimit)), l)
	}
	marker := func(at, labelY float64, text string, col color.Color) error {
		l, err := plotter.NewLine(plotter.XYs{{X: at, Y: 0}, {X: at, Y: ymax * 1.2}})
		if err != nil {
			return err
		}
		l.LineStyle.Color, l.LineStyle.Width, l.LineStyle.Dashes = col, vg.Points(1.2), []vg.Length{vg.Points(2), vg.Points(2)}
		lab, err := plotter.NewLabels(plotter.XYLabels{XYs: plotter.XYs{{X: at, Y: labelY}}, Labels: []string{text}})
		if err != nil {
			return err
		}
		lab.Offset = vg.Point{X: vg.Points(4)}
		lab.TextStyle[0].Color = col
		if at > xmin+(xmax-xmin)*0.6 { // keep a late label inside the chart: write it leftwards
			lab.TextStyle[0].XAlign = draw.XRight
			lab.Offset = vg.Point{X: vg.Points(-4)}
		}
		p.Add(l, lab)
		return nil
	}
	if emfileAt >= 0 {
		text := c.EMFILELabel
		if text == "" {
			text = fmt.Sprintf("first EMFILE at %.2f s", emfileAt)
		}
		if err := marker(emfileAt, ymax*1.22, text, colMarker); err != nil {
			return err
		}
	}
	fwdAt := -1.0
	for _, pt := range pts {
		if pt.ForwarderErrors > 0 {
			fwdAt = pt.Elapsed
			break
		}
	}
	if fwdAt >= 0 {
		if err := marker(fwdAt, ymax*1.22, fmt.Sprintf("forwarder's first EMFILE at %.2f s", fwdAt), colFwd); err != nil {
			return err
		}
	}
	if timeoutAt >= 0 {
		text := c.TimeoutLabel
		if text == "" {
			text = fmt.Sprintf("first connect timeout at %.2f s", timeoutAt)
		}
		if err := marker(timeoutAt, ymax*1.11, text, colTimeout); err != nil {
			return err
		}
	}
	return draw2(w, format, p, &leg)
}

// draw2 lays the chart out with its legend in a column on the right.
func draw2(w io.Writer, format string, p *plot.Plot, leg *plot.Legend) error {
	width, height := 9*vg.Inch, 4.5*vg.Inch
	var c vg.CanvasWriterTo
	switch format {
	case "svg":
		c = vgsvg.New(width, height)
	case "png":
		c = vgimg.PngCanvas{Canvas: vgimg.NewWith(vgimg.UseWH(width, height), vgimg.UseDPI(110))}
	default:
		return fmt.Errorf("plot: format %q: want svg or png", format)
	}
	dc := draw.New(c)
	legendWidth := 2.3 * vg.Inch
	p.Draw(draw.Crop(dc, 0, -legendWidth, 0, 0))
	leg.Top, leg.Left = true, true
	leg.Padding = vg.Points(4)
	leg.YOffs = -p.Title.TextStyle.Height(p.Title.Text) - vg.Points(8)
	leg.Draw(draw.Crop(dc, width-legendWidth+vg.Points(6), 0, 0, 0))
	_, err := c.WriteTo(w)
	return err
}

// countTicks labels counts so they stay short at a million: 250k, 1M, 1.5M.
type countTicks struct{}

func (countTicks) Ticks(min, max float64) []plot.Tick {
	// About five labelled ticks at 1, 2, 2.5 or 5 times a power of ten.
	raw := (max - min) / 5
	if raw <= 0 {
		return []plot.Tick{{Value: min, Label: human(min)}}
	}
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	var ts []plot.Tick
	// Bounded: at a large value a small step may not move v at all.
	for v := math.Ceil(min/step) * step; v <= max && len(ts) < 20; v += step {
		ts = append(ts, plot.Tick{Value: v, Label: human(v)})
		if v+step == v {
			break
		}
	}
	return ts
}

// human writes a count briefly with an SI prefix: 950, 12k, 1.5M, 3G.
func human(v float64) string {
	a := math.Abs(v)
	for _, u := range []struct {
		at, div float64
		sym     string
	}{{1e15, 1e15, "P"}, {1e12, 1e12, "T"}, {1e9, 1e9, "G"}, {1e6, 1e6, "M"}, {1e4, 1e3, "k"}} {
		if a >= u.at {
			return strings.TrimSuffix(strconv.FormatFloat(v/u.div, 'f', 1, 64), ".0") + u.sym
		}
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

// PlotFormat is the format for a file name: "svg" or "png".
func PlotFormat(path string) (string, error) {
	lower := strings.ToLower(path)
	switch {
	case strings.HasSuffix(lower, ".svg"):
		return "svg", nil
	case strings.HasSuffix(lower, ".png"):
		return "png", nil
	}
	return "", fmt.Errorf("%q: want a file name ending in .svg or .png", path)
}

// TitleOf is the chart title for a summary: the verdict.
func TitleOf(s Summary) string {
	t := "first limit: " + s.FirstLimit
	if s.FirstLimit != LimitNone {
		t += fmt.Sprintf(" at %s connections", human(float64(s.FirstLimitAt)))
	}
	if s.Interrupted {
		t += " (interrupted)"
	}
	return t + fmt.Sprintf(" — %s attempts, %s", human(float64(s.Attempted)), time.Duration(s.DurationS*float64(time.Second)).Round(time.Millisecond))
}

// ChartOf is the chart's title and marker labels for a run's summary.
func ChartOf(sum Summary) Chart {
	c := Chart{Title: TitleOf(sum)}
	if t := sum.Target; t != nil && t.FirstEMFILE != nil {
		c.EMFILELabel = fmt.Sprintf("first %s: %d accepted", t.FirstEMFILE.Errno, t.FirstEMFILE.Accepted)
	}
	return c
}

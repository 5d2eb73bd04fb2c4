package report

import (
	"bytes"
	"encoding/xml"
	"image/png"
	"io"
	"strings"
	"testing"
)

// svgTexts parses an SVG and returns its text elements: a parse error fails the test.
func svgTexts(t *testing.T, b []byte) []string {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(b))
	var texts []string
	inText := false
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return texts
		}
		if err != nil {
			t.Fatalf("invalid SVG: %v", err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			inText = tok.Name.Local == "text"
		case xml.CharData:
			if inText {
				texts = append(texts, strings.TrimSpace(string(tok)))
			}
		case xml.EndElement:
			inText = false
		}
	}
}

func rampPoints(n, limit float64) []Point {
	var pts []Point
	for i := range 50 {
		x := float64(i) / 10
		open := min(n, n*x/2)
		p := Point{Elapsed: x, Open: open, Served: min(open, limit*0.98), TargetFDs: min(open, limit), TargetNoFile: limit,
			Queued: max(0, open-limit)}
		if open >= limit {
			p.AcceptErrors = 1
		}
		if x >= 3 {
			p.ConnectTimeouts, p.Failed = 10, 10
		}
		pts = append(pts, p)
	}
	return pts
}

func TestWritePlotSVG(t *testing.T) {
	var b bytes.Buffer
	if err := WritePlot(&b, "svg", rampPoints(1_000_000, 400_000), Chart{Title: "first limit: target-fd-limit at 400k connections"}); err != nil {
		t.Fatal(err)
	}
	texts := strings.Join(svgTexts(t, b.Bytes()), "|")
	for _, want := range []string{"first limit: target-fd-limit", "first EMFILE at", "first connect timeout at",
		"target soft limit (400k)", "open (client side)", "time since the run started (s)", "|1M|"} {
		if !strings.Contains("|"+texts+"|", want) {
			t.Errorf("SVG lacks %q; texts: %s", want, texts)
		}
	}
	if strings.Contains(texts, "e+0") {
		t.Errorf("tick labels in exponent form: %s", texts)
	}
}

func TestWritePlotPNG(t *testing.T) {
	var b bytes.Buffer
	if err := WritePlot(&b, "png", rampPoints(2000, 1024), Chart{}); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(&b)
	if err != nil {
		t.Fatal(err)
	}
	if r := img.Bounds(); r.Dx() < 800 || r.Dy() < 400 {
		t.Errorf("PNG is %v", r)
	}
}

func TestReadTimeline(t *testing.T) {
	header := strings.Join(TimelineHeader, ",") + "\n"
	for _, tc := range []struct {
		name, in, err string
		rows          int
	}{
		{"empty", "", "empty file", 0},
		{"header only", header, "no rows", 0},
		{"not ours", "a,b\n1,2\n", "no elapsed_s column", 0},
		{"not a number", "elapsed_s,open,served,queued,failed,target_fds\n0.1,x,0,0,0,0\n", "line 2: open \"x\"", 0},
		{"ragged", "elapsed_s,open,served,queued,failed,target_fds\n0.1,1\n", "line 2", 0},
		{"minimal", "elapsed_s,open,served,queued,failed,target_fds\n0.1,1,1,0,0,12\n0.2,2,2,0,0,13\n", "", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pts, err := ReadTimeline(strings.NewReader(tc.in))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || len(pts) != tc.rows {
				t.Fatalf("%d rows, %v", len(pts), err)
			}
		})
	}
}

func TestHuman(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 950: "950", 2500: "2500", 12000: "12k", 250000: "250k", 1e6: "1M", 1.5e6: "1.5M"} {
		if got := human(v); got != want {
			t.Errorf("human(%v) = %q, want %q", v, got, want)
		}
	}
}

package main

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// svgText is every text of an SVG file, joined; invalid XML fails the test.
func svgText(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(bytes.NewReader(b))
	var sb strings.Builder
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return sb.String()
		}
		if err != nil {
			t.Fatalf("%s is not valid SVG: %v", path, err)
		}
		if cd, ok := tok.(xml.CharData); ok {
			sb.Write(cd)
			sb.WriteString("|")
		}
	}
}

// run --plot draws the run; plot redraws it from the timeline run wrote.
func TestPlot(t *testing.T) {
	noLeftovers(t)
	dir := t.TempDir()
	tl, js, svg, pngPath, replot := filepath.Join(dir, "t.csv"), filepath.Join(dir, "s.json"), filepath.Join(dir, "run.svg"),
		filepath.Join(dir, "run.png"), filepath.Join(dir, "replot.svg")
	var stdout, stderr bytes.Buffer
	err := run(t.Context(), []string{"run", "-q", "--connections", "300", "--target-nofile", "64", "--hold", "500ms",
		"--interval", "50ms", "--timeline", tl, "--json", js, "--plot", svg}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	text := svgText(t, svg)
	for _, want := range []string{"first limit: target-fd-limit at", "first EMFILE:", "accepted", "target soft limit (64)", "target descriptors in use"} {
		if !strings.Contains(text, want) {
			t.Errorf("run --plot SVG lacks %q: %s", want, text)
		}
	}
	for _, tc := range []struct {
		args []string
		out  string
	}{
		{[]string{"plot", tl, "-o", replot, "--summary", js}, replot},
		{[]string{"plot", tl, "--output", pngPath}, pngPath},
	} {
		if _, stderr, code := cli(t, tc.args...); code != 0 {
			t.Fatalf("%v: exit %d, %s", tc.args, code, stderr)
		}
	}
	if text := svgText(t, replot); !strings.Contains(text, "first limit: target-fd-limit") || !strings.Contains(text, "target soft limit (64)") {
		t.Errorf("replot lacks the verdict or the limit line: %s", text)
	}
	f, err := os.Open(pngPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := png.Decode(f); err != nil {
		t.Errorf("plot -o .png: %v", err)
	}
}

// Bad or empty timelines and bad plot arguments: one line, exit 2, no file.
func TestPlotBadInput(t *testing.T) {
	noLeftovers(t)
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	empty, headerOnly, garbage := write("empty.csv", ""), write("header.csv", "elapsed_s,open,served,queued,failed,target_fds\n"),
		write("garbage.csv", "elapsed_s,open,served,queued,failed,target_fds\n0.1,lots,0,0,0,0\n")
	good := write("good.csv", "elapsed_s,open,served,queued,failed,target_fds\n0.1,1,1,0,0,12\n")
	out := filepath.Join(dir, "out", "x.svg")
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"plot", empty, "-o", filepath.Join(dir, "a.svg")}, "empty file"},
		{[]string{"plot", headerOnly, "-o", filepath.Join(dir, "a.svg")}, "no rows"},
		{[]string{"plot", garbage, "-o", filepath.Join(dir, "a.svg")}, "is not a number"},
		{[]string{"plot", filepath.Join(dir, "missing.csv"), "-o", filepath.Join(dir, "a.svg")}, "missing.csv"},
		{[]string{"plot", good}, "--output"},
		{[]string{"plot", good, "-o", filepath.Join(dir, "a.gif")}, "--output"},
		{[]string{"plot", good, "-o", out}, "--output"},
		{[]string{"plot", "-o", filepath.Join(dir, "a.svg")}, "one timeline CSV"},
		{[]string{"run", "--plot", filepath.Join(dir, "a.jpg")}, "--plot"},
		// Bounded input: no newline, or more rows than a day of samples.
		{[]string{"plot", "/dev/zero", "-o", filepath.Join(dir, "a.svg")}, "longer than"},
		{[]string{"plot", good, "--summary", "/dev/zero", "-o", filepath.Join(dir, "a.svg")}, "more than"},
		{[]string{"plot", good, "--summary", write("empty.json", "{}"), "-o", filepath.Join(dir, "a.svg")}, "no schema_version or first_limit"},
		{[]string{"plot", write("neg.csv", "elapsed_s,open,served,queued,failed,target_fds\n0.1,-4,0,0,0,0\n"), "-o", filepath.Join(dir, "a.svg")}, "out of range"},
		{[]string{"plot", write("huge.csv", "elapsed_s,open,served,queued,failed,target_fds\n0.1,1e300,0,0,0,0\n"), "-o", filepath.Join(dir, "a.svg")}, "out of range"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			before, _ := os.ReadDir(dir)
			_, stderr, code := cli(t, tc.args...)
			if code != 2 || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, stderr %q: want 2 and one line with %q", code, stderr, tc.want)
			}
			if after, _ := os.ReadDir(dir); len(after) != len(before) {
				t.Errorf("files changed: %v", after)
			}
		})
	}
}

// Huge counts and a long run get SI-scaled labels on both axes, and the
// legend stays in its own column beside the data.
func TestPlotHugeValues(t *testing.T) {
	dir := t.TempDir()
	tl := filepath.Join(dir, "t.csv")
	var b strings.Builder
	b.WriteString("elapsed_s,open,served,queued,failed,target_fds\n")
	for i := range 50 {
		fmt.Fprintf(&b, "%d,%d,%d,0,0,%d\n", i*100000, i*40_000_000_000, i*40_000_000_000, i*1_000_000)
	}
	os.WriteFile(tl, []byte(b.String()), 0o644)
	out := filepath.Join(dir, "x.svg")
	if _, stderr, code := cli(t, "plot", tl, "-o", out); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	text := svgText(t, out)
	for _, want := range []string{"2T", "1M", "4M"} {
		if !strings.Contains(text, want) {
			t.Errorf("chart lacks the label %q: %q", want, text)
		}
	}
	if strings.Contains(text, "e+") {
		t.Errorf("chart has an exponent label: %q", text)
	}
}

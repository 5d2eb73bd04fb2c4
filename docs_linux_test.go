package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/connlimit/connlimit/loadgen"
	"github.com/connlimit/connlimit/report"
)

func readDoc(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// backtickWords are the words inside `code spans` of a document: what it
// names as keys, flags and values.
func backtickWords(doc string) map[string]bool {
	words := map[string]bool{}
	for _, span := range regexp.MustCompile("`[^`]+`").FindAllString(doc, -1) {
		for _, w := range regexp.MustCompile(`[A-Za-z0-9_-]+`).FindAllString(span, -1) {
			words[w] = true
		}
	}
	return words
}

// Every flag the binary's help lists is in the reference.
func TestDocsNameEveryFlag(t *testing.T) {
	ref := readDoc(t, "docs/reference.md")
	for _, cmd := range []string{"run", "inspect", "target", "forward", "plot"} {
		var out, errb bytes.Buffer
		if err := run(context.Background(), []string{"help", cmd}, &out, &errb); exitCode(err) != 0 {
			t.Fatalf("help %s: %v", cmd, err)
		}
		flags := regexp.MustCompile(`(?m)^\s+(?:-\w, )?--([a-z0-9-]+)`).FindAllStringSubmatch(out.String(), -1)
		if len(flags) < 2 {
			t.Fatalf("help %s listed %d flags:\n%s", cmd, len(flags), out.String())
		}
		for _, f := range flags {
			if !strings.Contains(ref, "`--"+f[1]) {
				t.Errorf("docs/reference.md does not name %s's --%s", cmd, f[1])
			}
		}
	}
}

// jsonKeys adds every key of a decoded JSON value, nested ones included.
func jsonKeys(v any, into map[string]bool) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			into[k] = true
			jsonKeys(x, into)
		}
	case []any:
		for _, x := range v {
			jsonKeys(x, into)
		}
	}
}

// typeKeys adds the JSON keys of a Go type, so keys a run leaves null or
// empty (died, segments) are held to the docs too.
func typeKeys(t reflect.Type, into map[string]bool, seen map[reflect.Type]bool) {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || seen[t] {
		return
	}
	seen[t] = true
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name != "" {
			into[name] = true
		}
		typeKeys(f.Type, into, seen)
	}
}

// Every key of a real summary, and of the summary's type, is in
// docs/json.md; every verdict word, outcome and probe is where a reader
// looks for it; the report columns are in the reference.
func TestDocsMatchTheSummary(t *testing.T) {
	noLeftovers(t)
	dir := t.TempDir()
	keys := map[string]bool{}
	for i, args := range [][]string{
		{"--forward", "--payload", "100", "--target-nofile", "64", "--connections", "100", "--hold", "0s", "--require-served", "1", "--expect-limit", "none", "--max-connect-p99", "1s"},
		{"--procs", "2", "--target-procs", "2", "--connections", "200", "--hold", "0s"},
	} {
		js := filepath.Join(dir, "s.json")
		var out, errb bytes.Buffer
		err := run(context.Background(), append([]string{"run", "-q", "--json", js}, args...), &out, &errb)
		if code := exitCode(err); code != 0 && code != exitGate {
			t.Fatalf("run %d: %v\n%s", i, err, errb.String())
		}
		var v any
		if err := json.Unmarshal([]byte(readDoc(t, js)), &v); err != nil {
			t.Fatal(err)
		}
		jsonKeys(v, keys)
	}
	typeKeys(reflect.TypeFor[report.Summary](), keys, map[reflect.Type]bool{})
	documented := backtickWords(readDoc(t, "docs/json.md"))
	for k := range keys {
		if !documented[k] {
			t.Errorf("docs/json.md does not document the key %q", k)
		}
	}

	readme, verdicts, ref := readDoc(t, "README.md"), readDoc(t, "docs/verdicts.md"), readDoc(t, "docs/reference.md")
	for _, v := range report.LimitWords() {
		if !strings.Contains(readme, "| `"+v+"` |") || !strings.Contains(verdicts, "**`"+v+"`**") || !documented[v] {
			t.Errorf("verdict %s is not in README's table, docs/verdicts.md and docs/json.md", v)
		}
	}
	for _, o := range loadgen.Outcomes() {
		if !strings.Contains(ref, "| `"+o.String()+"` |") || !documented[o.String()] {
			t.Errorf("outcome %s is not in docs/reference.md's table and docs/json.md", o)
		}
	}
	for _, p := range strings.Split(strings.ReplaceAll(runRanges["probe"], " or ", ", "), ", ") {
		if !documented[p] || !strings.Contains(ref, "| `"+p+"`") {
			t.Errorf("probe %s is not in docs/json.md and docs/reference.md's table", p)
		}
	}
	for _, h := range [][]string{report.CSVHeader, report.SegmentHeader, report.TimelineHeader} {
		if !strings.Contains(ref, strings.Join(h, ",")) {
			t.Errorf("docs/reference.md lacks the columns %s", strings.Join(h, ","))
		}
	}
	for _, code := range []string{"129", "130", "143"} {
		if !strings.Contains(readme, code) || !strings.Contains(usageText, code) {
			t.Errorf("exit status %s is not in the README and the usage text", code)
		}
	}
	noProcessLeft(t)
}

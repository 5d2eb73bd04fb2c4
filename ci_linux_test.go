package main

import (
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The run's reports for the tools around it, each read by its real
// consumer: JUnit XML by xmllint against the junit-10 schema, the
// Prometheus text by promtool, the job summary as GitHub would append it.
// A failing gate is a failure in all three.
func TestReportsForCI(t *testing.T) {
	noLeftovers(t)
	xmllint := needServer(t, "xmllint", "libxml2-utils")
	promtool := needServer(t, "promtool", "prometheus")
	dir := t.TempDir()
	junit, prom, step, js := filepath.Join(dir, "j.xml"), filepath.Join(dir, "m.prom"), filepath.Join(dir, "step.md"), filepath.Join(dir, "s.json")
	os.WriteFile(step, []byte("earlier step\n"), 0o644)
	cmd := exec.Command(testExe, "run", "-q", "--connections", "300", "--target-nofile", "200", "--hold", "0s",
		"--junit", junit, "--prom", prom, "--json", js, "--require-served", "250", "--expect-limit", "target-fd-limit")
	cmd.Env = append(os.Environ(), "GITHUB_STEP_SUMMARY="+step)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("run with a failing gate: %v, want exit 1\n%s", err, out)
	}
	// How many connections fit depends on the descriptors the target holds
	// besides them (the runtime's, the inherited ones), so the count every
	// report must carry is the one the JSON accounts for.
	got := readSummary(t, js)
	served := got.Outcomes["served"]
	if e := got.Target.FirstEMFILE; e == nil || served != int(got.FirstLimitAt) || served+len(e.OtherFDs) != 200 {
		t.Fatalf("served %d, first_limit_at %d, first_emfile %+v: want served + other fds = 200", served, got.FirstLimitAt, e)
	}
	n := strconv.Itoa(served)
	if out, err := exec.Command(xmllint, "--noout", "--schema", "report/testdata/junit-10.xsd", junit).CombinedOutput(); err != nil {
		t.Errorf("xmllint: %v\n%s", err, out)
	}
	x := readDoc(t, junit)
	for _, want := range []string{`tests="3" failures="1" errors="0"`, `<testcase name="first limit: target-fd-limit" classname="connlimit.verdict"`,
		`<failure message="gate --require-served failed: want at least 250 served, got ` + n + ` served" type="gate">`,
		`<property name="outcome.served" value="` + n + `">`, `<property name="first_limit_at" value="` + n + `">`} {
		if !strings.Contains(x, want) {
			t.Errorf("JUnit lacks %s:\n%s", want, x)
		}
	}
	check := exec.Command(promtool, "check", "metrics")
	f, _ := os.Open(prom)
	defer f.Close()
	check.Stdin = f
	if out, err := check.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
	m := readDoc(t, prom)
	for _, re := range []string{`connlimit_attempts\{outcome="served",shard="all",target="127\.0\.0\.1:\d+"\} ` + n,
		`connlimit_verdict_info\{limit="target-fd-limit",setting="the target's RLIMIT_NOFILE \(soft\)",shard="all",target="[^"]+"\} 1`,
		`connlimit_first_limit_at\{[^}]+\} ` + n, `connlimit_gate_passed\{gate="--require-served",[^}]+\} 0`,
		`connlimit_connect_latency_seconds_count\{[^}]+\} 300`, `connlimit_target_nofile\{pid="\d+",[^}]+\} 200`} {
		if !regexp.MustCompile(re).MatchString(m) {
			t.Errorf("metrics lack %s:\n%s", re, m)
		}
	}
	s := readDoc(t, step)
	if !strings.HasPrefix(s, "earlier step\n### connlimit run against `127.0.0.1:") || !strings.Contains(s, "**first limit: `target-fd-limit` at "+n+" connections**") ||
		!strings.Contains(s, "| `--require-served` | at least 250 served | "+n+" served | ❌ failed |") || len(s) > 8<<10 {
		t.Errorf("job summary (appended, under 8 KiB):\n%s", s)
	}
}

// --push sends the same metrics to a real Pushgateway (started here, on
// loopback), grouped by instance and shard; a shard's push and a merged
// run's live side by side.
func TestPushgateway(t *testing.T) {
	noLeftovers(t)
	bin := needServer(t, "prometheus-pushgateway", "prometheus-pushgateway")
	port := freePort(t)
	gw := "http://127.0.0.1:" + strconv.Itoa(port)
	startServer(t, port, bin, "--web.listen-address=127.0.0.1:"+strconv.Itoa(port))
	if _, errOut, code := cli(t, "run", "-q", "--connections", "50", "--hold", "0s", "--push", gw); code != 0 {
		t.Fatalf("run --push: exit %d %s", code, errOut)
	}
	if _, errOut, code := cli(t, "run", "-q", "--connections", "50", "--hold", "0s", "--push", "http://127.0.0.1:1"); code != 3 || !strings.Contains(errOut, "--push http://127.0.0.1:1: not pushed") {
		t.Errorf("--push to nothing: exit %d %q: want 3, named", code, errOut)
	}
	if _, errOut, code := cli(t, "run", "--push", "ftp://x"); code != 2 || !strings.Contains(errOut, "--push \"ftp://x\": want an http or https URL") {
		t.Errorf("--push ftp://x: exit %d %q", code, errOut)
	}
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(gw + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	host, _ := os.Hostname()
	re := regexp.MustCompile(`connlimit_attempts\{instance="` + regexp.QuoteMeta(host) + `",job="connlimit",outcome="served",shard="all",target="127\.0\.0\.1:\d+"\} 50`)
	if !re.Match(b) {
		t.Errorf("the Pushgateway has no served count from the run:\n%s", b)
	}
}

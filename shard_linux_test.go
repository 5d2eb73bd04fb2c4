package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/connlimit/connlimit/k8s"
	batchv1 "k8s.io/api/batch/v1"
	"sigs.k8s.io/yaml"
)

// shardCmd is shard i of a run as a Kubernetes Indexed Job starts it:
// the same flags everywhere, the index in JOB_COMPLETION_INDEX.
func shardCmd(i int, stdout *bytes.Buffer, args ...string) *exec.Cmd {
	cmd := exec.Command(testExe, append([]string{"run", "-q"}, args...)...)
	cmd.Env = append(os.Environ(), "JOB_COMPLETION_INDEX="+strconv.Itoa(i))
	cmd.Stdout, cmd.Stderr = stdout, stdout
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

type mergedJSON struct {
	summaryJSON
	ConnectLatencyUS struct {
		P50, P90, P99, Max int64
	} `json:"connect_latency_us"`
	Shards []struct {
		Index     int     `json:"index"`
		Attempted int     `json:"attempted"`
		LateS     float64 `json:"late_s"`
	} `json:"shards"`
	Merge *struct {
		Count        int     `json:"count"`
		StartSpreadS float64 `json:"start_spread_s"`
	} `json:"merge"`
}

// Four shards against one built-in target (RLIMIT_NOFILE 300) started as
// its own server, merged: the same counts and verdict as one run of all
// the connections against it, the merged p99 the pooled samples' own
// within the histogram's precision, each shard's sources a block of its
// own, and kubectl logs' stream read as well as the files.
func TestShardsMerged(t *testing.T) {
	noLeftovers(t)
	port := freePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	startServer(t, port, targetExe(t), "target", "--listen", addr, "--nofile", "300")
	run := []string{"--target", addr, "--probe", "greeting", "--connections", "500", "--hold", "500ms"}
	single := runJSON(t, run...)
	time.Sleep(300 * time.Millisecond) // the target closes what the run held

	const S = 4
	dir := t.TempDir()
	at := time.Now().Add(2 * time.Second).UTC().Format(time.RFC3339Nano)
	outs := make([]bytes.Buffer, S)
	var cmds []*exec.Cmd
	var jsons []string
	for i := range S {
		js := filepath.Join(dir, fmt.Sprintf("shard-%d.json", i))
		jsons = append(jsons, js)
		// A hold past the spread of the ramps: a shard that closed early
		// would free the target's slots for another's queue.
		cmd := shardCmd(i, &outs[i], append(slices.Clone(run), "--hold", "3s", "--shards", strconv.Itoa(S), "--start-at", at,
			"--json", js, "--csv", filepath.Join(dir, fmt.Sprintf("shard-%d.csv", i)), "--shard-out", "-",
			"--timeline", filepath.Join(dir, fmt.Sprintf("shard-%d.timeline.csv", i)))...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	for i, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Fatalf("shard %d: %v\n%s", i, err, outs[i].String())
		}
	}

	mj, mcsv, mtl, mplot := filepath.Join(dir, "merged.json"), filepath.Join(dir, "merged.csv"), filepath.Join(dir, "merged.timeline.csv"), filepath.Join(dir, "merged.svg")
	mjunit, mprom := filepath.Join(dir, "merged.xml"), filepath.Join(dir, "merged.prom")
	out, errOut, code := cli(t, append(append([]string{"merge"}, jsons...), "--json", mj, "--csv", mcsv, "--timeline", mtl, "--plot", mplot,
		"--junit", mjunit, "--prom", mprom, "--require-served", "1")...)
	if code != 0 {
		t.Fatalf("merge: exit %d\n%s%s", code, out, errOut)
	}
	var m mergedJSON
	b, _ := os.ReadFile(mj)
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	validate(t, "summary.schema.json", b)
	for _, js := range jsons {
		validate(t, "shard.schema.json", []byte(readDoc(t, js)))
	}
	if !maps.Equal(m.Outcomes, single.Outcomes) || m.Attempted != 500 || m.FirstLimit != single.FirstLimit || m.FirstLimitAt != single.FirstLimitAt {
		t.Errorf("merged: %s at %d, %v; one run: %s at %d, %v", m.FirstLimit, m.FirstLimitAt, m.Outcomes, single.FirstLimit, single.FirstLimitAt, single.Outcomes)
	}
	if m.Merge == nil || m.Merge.Count != S || len(m.Shards) != S || m.Merge.StartSpreadS > 0.5 {
		t.Errorf("merge %+v, shards %+v: want %d shards starting together", m.Merge, m.Shards, S)
	}
	for _, sh := range m.Shards {
		if want := k8s.Share(500, S, sh.Index); sh.Attempted != want || sh.LateS > 0.5 {
			t.Errorf("shard %+v: want %d attempts, on time", sh, want)
		}
	}

	// The merged CSV: every shard's rows, its index last, its sources its own block.
	rows := readCSV(t, mcsv)
	if len(rows) != 501 || rows[0][len(rows[0])-1] != "shard" {
		t.Fatalf("merged CSV: %d rows, header %v", len(rows), rows[0])
	}
	var pool []int64
	for _, r := range rows[1:] {
		k, _ := strconv.Atoi(r[len(r)-1])
		if !strings.HasPrefix(r[2], fmt.Sprintf("127.%d.0.", k+1)) {
			t.Errorf("shard %d row from %s: want its block 127.%d.0.0/16", k, r[2], k+1)
			break
		}
		if us, err := strconv.ParseInt(r[8], 10, 64); err == nil {
			pool = append(pool, us)
		}
	}
	slices.Sort(pool)
	p99 := pool[(len(pool)*99+99)/100-1]
	if d := m.ConnectLatencyUS.P99 - p99; d < 0 || float64(d) > float64(p99)/1000+1 {
		t.Errorf("merged p99 %d µs, pooled samples' p99 %d µs: want within 0.1%%", m.ConnectLatencyUS.P99, p99)
	}
	t.Logf("merged p99 %d µs, pooled %d µs; %s at %d", m.ConnectLatencyUS.P99, p99, m.FirstLimit, m.FirstLimitAt)

	if x := readDoc(t, mjunit); !strings.Contains(x, `<testsuite name="connlimit merge of 4 shards, `+addr+`" tests="2" failures="0"`) {
		t.Errorf("merged JUnit:\n%s", x)
	}
	if p := readDoc(t, mprom); !strings.Contains(p, `connlimit_attempts{outcome="served",shard="all",target="`+addr+`"} `+strconv.Itoa(single.Outcomes["served"])) {
		t.Errorf("merged metrics:\n%s", p)
	}

	// The timelines on one clock: the shards' attempts add up to the run's.
	tl := readCSV(t, mtl)
	attempted := 0
	for _, r := range tl[1:] {
		n, _ := strconv.Atoi(r[1])
		attempted = max(attempted, n)
	}
	if tl[0][1] != "attempted" || len(tl) < 10 || attempted != 500 {
		t.Errorf("merged timeline: %d rows, at most %d attempted: want 500", len(tl), attempted)
	}
	if svg, err := os.ReadFile(mplot); err != nil || !bytes.Contains(svg, []byte("<svg")) {
		t.Errorf("merged plot: %v", err)
	}

	// kubectl logs -l job-name=… | connlimit merge -: every pod's output in one stream.
	var logs bytes.Buffer
	for i := range outs {
		logs.Write(outs[i].Bytes())
	}
	cmd := exec.Command(testExe, "merge", "-")
	cmd.Stdin = &logs
	got, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(got), fmt.Sprintf("first limit: %s at %d connections", single.FirstLimit, single.FirstLimitAt)) {
		t.Errorf("merge - of the shards' stdout: %v\n%s", err, got)
	}
}

// A shard killed mid-run writes no summary: merge names it missing and
// exits 3, writing nothing.
func TestShardKilled(t *testing.T) {
	noLeftovers(t)
	port := freePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	startServer(t, port, targetExe(t), "target", "--listen", addr, "--nofile", "1000")
	dir := t.TempDir()
	var outs [2]bytes.Buffer
	var cmds []*exec.Cmd
	for i := range 2 {
		cmd := shardCmd(i, &outs[i], "--target", addr, "--connections", "200", "--rate", "100", "--hold", "0s",
			"--shards", "2", "--json", filepath.Join(dir, fmt.Sprintf("shard-%d.json", i)))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	time.Sleep(700 * time.Millisecond)
	cmds[1].Process.Kill()
	cmds[1].Wait()
	if err := cmds[0].Wait(); err != nil {
		t.Fatalf("shard 0: %v\n%s", err, outs[0].String())
	}
	mj := filepath.Join(dir, "merged.json")
	_, errOut, code := cli(t, "merge", filepath.Join(dir, "shard-0.json"), "--json", mj)
	if code != 3 || !strings.Contains(errOut, "shard 1 of 2 missing") {
		t.Errorf("merge without shard 1: exit %d, %q: want 3 and shard 1 named", code, errOut)
	}
	if _, err := os.Stat(mj); err == nil {
		t.Errorf("merge refused, yet wrote %s", mj)
	}
}

// Bad shard flags: one line naming the flag and what it accepts, exit 2.
func TestShardBadInput(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--target", "127.0.0.1:1", "--shard", "4/4"}, "--shard \"4/4\": want I/S with 0 <= I < S"},
		{[]string{"--target", "127.0.0.1:1", "--shard", "x"}, "--shard \"x\""},
		{[]string{"--target", "127.0.0.1:1", "--shards", "0"}, "--shards 0: want an integer from 1"},
		{[]string{"--target", "127.0.0.1:1", "--shards", "3"}, "no shard index: set JOB_COMPLETION_INDEX or SLURM_ARRAY_TASK_ID"},
		{[]string{"--target", "127.0.0.1:1", "--shard", "0/2", "--shards", "2"}, "give one"},
		{[]string{"--shard", "0/2"}, "needs --target"},
		{[]string{"--target", "127.0.0.1:1", "--shard", "0/2", "--require-served", "5"}, "give --require-served, --expect-limit and --max-connect-p99 to connlimit merge"},
		{[]string{"--target", "127.0.0.1:1", "--start-at", "2026-12-02T15:00:00Z"}, "--start-at: only with --shard"},
		{[]string{"--target", "127.0.0.1:1", "--shard", "0/2", "--start-at", "tomorrow"}, "--start-at \"tomorrow\": want an RFC 3339 time"},
		{[]string{"--target", "127.0.0.1:1", "--shard", "0/2", "--start-at", "2099-01-01T00:00:00Z"}, "at most 24h from now"},
		{[]string{"--target", "127.0.0.1:1", "--shard-out", "-"}, "--shard-out: only with --shard"},
		{[]string{"merge"}, "want the shards' summaries"},
		{[]string{"merge", "--expect-limit", "nope", "x.json"}, "--expect-limit \"nope\""},
	} {
		args := tc.args
		if args[0] != "merge" {
			args = append([]string{"run"}, args...)
		}
		cmd := exec.Command(testExe, args...)
		cmd.Env = slices.DeleteFunc(os.Environ(), func(e string) bool {
			return strings.HasPrefix(e, "JOB_COMPLETION_INDEX=") || strings.HasPrefix(e, "SLURM_ARRAY_TASK_ID=")
		})
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		ee, _ := err.(*exec.ExitError)
		if ee == nil || ee.ExitCode() != 2 || !strings.Contains(stderr.String(), tc.want) || strings.Count(strings.TrimSpace(stderr.String()), "\n") > 0 {
			t.Errorf("%v: %v, %q: want exit 2 and one line with %q", args, err, stderr.String(), tc.want)
		}
	}
}

// The manifests' pod command runs as is: two pods' args, the index in
// JOB_COMPLETION_INDEX, their stdout merged as kubectl logs gives it.
func TestK8sPodArgsRun(t *testing.T) {
	noLeftovers(t)
	port := freePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	startServer(t, port, targetExe(t), "target", "--listen", addr, "--nofile", "1000")
	out, errOut, code := cli(t, "k8s", "--shards", "2", "--image", "connlimit:test", "--target", addr, "--connections", "101",
		"--probe", "greeting", "--hold", "200ms", "--require-served", "101")
	if code != 0 {
		t.Fatalf("k8s: exit %d %s", code, errOut)
	}
	docs := strings.Split(out, "\n---\n")
	var job batchv1.Job
	if len(docs) != 2 || yaml.UnmarshalStrict([]byte(docs[1]), &job) != nil {
		t.Fatalf("manifests:\n%s", out)
	}
	args := job.Spec.Template.Spec.Containers[0].Args
	i := slices.Index(args, "--start-at")
	args[i+1] = time.Now().Add(time.Second).UTC().Format(time.RFC3339Nano) // not the manifests' 2m
	var logs bytes.Buffer
	for k := range 2 {
		var o bytes.Buffer
		cmd := shardCmd(k, &o, args[1:]...) // args[0] is "run"
		if err := cmd.Run(); err != nil {
			t.Fatalf("pod %d: %v\n%s", k, err, o.String())
		}
		logs.Write(o.Bytes())
	}
	merge := regexp.MustCompile(`\| (connlimit merge .*)`).FindStringSubmatch(out)
	if merge == nil || merge[1] != "connlimit merge - --require-served=101" {
		t.Fatalf("merge command %q", merge)
	}
	cmd := exec.Command(testExe, strings.Fields(merge[1])[1:]...)
	cmd.Stdin = &logs
	got, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(got), "served                  101") || !strings.Contains(string(got), "PASS") {
		t.Errorf("merge: %v\n%s", err, got)
	}
}

func TestK8sBadInput(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--image", "x", "--target", "127.0.0.1:1"}, "--shards 0: want an integer from 1"},
		{[]string{"--shards", "2", "--target", "127.0.0.1:1"}, "--image \"\": want a container image"},
		{[]string{"--shards", "2", "--image", "x"}, "needs --target"},
		{[]string{"--shards", "2", "--image", "x", "--target", "127.0.0.1:1", "--name", "Bad_Name"}, "--name \"Bad_Name\": want a DNS label"},
		{[]string{"--shards", "2", "--image", "x", "--target", "127.0.0.1:1", "--start-in", "1s"}, "--start-in 1s"},
		{[]string{"--shards", "2", "--image", "x", "--target", "127.0.0.1:1", "--start-at", "2026-12-02T15:00:00Z"}, "--start-at: the manifests set it"},
		{[]string{"--shards", "2", "--image", "x", "--target", "127.0.0.1:1", "--rate", "-1"}, "--rate -1"},
		{[]string{"--shards", "2", "--image", "x", "--target", "127.0.0.1:1", "--target-nofile", "100"}, "--target-nofile describes the built-in target"},
		{[]string{"--shards", "2", "--image", "x", "--target", "127.0.0.1:1", "--connections", "200000"}, "want --shards 4 or more"},
		{[]string{"--shards", "2", "--image", "x", "--target", "127.0.0.1:1", "--csv", "a.csv"}, "--csv: a pod's files vanish with it"},
	} {
		_, errOut, code := cli(t, append([]string{"k8s"}, tc.args...)...)
		if code != 2 || !strings.Contains(errOut, tc.want) {
			t.Errorf("k8s %v: exit %d, %q: want 2 and %q", tc.args, code, errOut, tc.want)
		}
	}
}

// merge reads inputs from elsewhere: a shard's JSON cannot make it read a
// file outside its directory, an endless input fails instead of filling
// the memory, a line cut short is named, and a --push password never
// reaches a log.
func TestMergeHostileInput(t *testing.T) {
	noLeftovers(t)
	port := freePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	startServer(t, port, targetExe(t), "target", "--listen", addr, "--nofile", "100")
	dir := t.TempDir()
	js, csvPath := filepath.Join(dir, "s.json"), filepath.Join(dir, "s.csv")
	if _, errOut, code := cli(t, "run", "-q", "--target", addr, "--connections", "10", "--hold", "0s", "--shard", "0/1", "--json", js, "--csv", csvPath); code != 0 {
		t.Fatalf("shard: exit %d %s", code, errOut)
	}
	var m map[string]any
	json.Unmarshal([]byte(readDoc(t, js)), &m)
	m["shard"].(map[string]any)["csv"] = "../../etc/passwd"
	evil := filepath.Join(dir, "evil.json")
	b, _ := json.Marshal(m)
	os.WriteFile(evil, b, 0o644)
	// A --shard-out line as a pod's log has it, cut off mid-way.
	var lineBuf bytes.Buffer
	json.Compact(&lineBuf, []byte(readDoc(t, js)))
	line := lineBuf.Bytes()
	cut := filepath.Join(dir, "cut.log")
	os.WriteFile(cut, append([]byte("pod log line\n"), line[:len(line)/2]...), 0o644)
	out := filepath.Join(dir, "merged.csv")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"merge", evil, "--csv", out}, `names its csv "../../etc/passwd": want a file name, no directory`},
		{[]string{"merge", "/dev/zero"}, "more than 64 MiB"},
		{[]string{"merge", cut}, "line 2: unexpected end of JSON input (a shard's line cut short?)"},
		{[]string{"merge", js, "--push", "http://user:secret@127.0.0.1:1"}, "--push http://user:xxxxx@127.0.0.1:1: not pushed"},
	} {
		_, errOut, code := cli(t, tc.args...)
		if code != 3 || !strings.Contains(errOut, tc.want) || strings.Contains(errOut, "secret") {
			t.Errorf("%v: exit %d, %q: want 3 and %q", tc.args, code, errOut, tc.want)
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Errorf("merge refused, yet wrote %s", out)
	}
}

package main

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/connlimit/connlimit/k8s"
)

var k8sRanges = map[string]string{
	"image":    "a container image reference, such as registry.example/connlimit:1.0",
	"name":     "a DNS label: lower-case letters, digits and '-', at most 63",
	"start-in": "a duration from 30s to 24h, such as 2m: time to apply the manifests before the ramps start",
}

const k8sUsage = `Usage: connlimit k8s --shards S --image IMAGE --target HOST:PORT [run flags]

Prints the Kubernetes manifests of a run spread over S pods: an Indexed Job
whose pod I runs shard I (JOB_COMPLETION_INDEX), a headless Service, and as
comments the commands that apply them and merge the shards' reports. The
run flags are checked here, as run would, and passed to every shard; the
CI gates go to the merge command.

Flags:
`

// gateFlags judge the whole run: merge takes them, not the shards.
var gateFlags = []string{"require-served", "expect-limit", "max-connect-p99"}

// shardOwned are set by the manifests for every pod.
var shardOwned = []string{"shards", "shard", "start-at", "shard-out", "quiet"}

func runK8s(args []string, stdout io.Writer) error {
	var cfg runConfig
	fs := runFlags(&cfg)
	image := fs.String("image", "", "the connlimit image every pod runs (see Containerfile)")
	name := fs.String("name", "connlimit", "the Job's and Service's name")
	namespace := fs.String("namespace", "", "their namespace (default: kubectl's)")
	startIn := fs.Duration("start-in", 2*time.Minute, "start the shards' ramps this long after now: the time to apply the manifests")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			fmt.Fprint(stdout, k8sUsage+fs.FlagUsages())
			return errHelp
		}
		return flagError(err, "k8s", k8sMergeRanges())
	}
	if err := noEmptyValues(fs, "tls-server-name", "namespace"); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return usageErr("k8s takes no arguments, got %q", fs.Args())
	case !fs.Changed("shards") || cfg.Shards < 1 || cfg.Shards > maxShards:
		return usageErr("--shards %d: want %s", cfg.Shards, shardRanges["shards"])
	case *image == "" || strings.ContainsAny(*image, " \t\n"):
		return usageErr("--image %q: want %s", *image, k8sRanges["image"])
	case !dnsLabel(*name):
		return usageErr("--name %q: want %s", *name, k8sRanges["name"])
	case *namespace != "" && !dnsLabel(*namespace):
		return usageErr("--namespace %q: want %s", *namespace, k8sRanges["name"])
	case *startIn < 30*time.Second || *startIn > 24*time.Hour:
		return usageErr("--start-in %s: want %s", *startIn, k8sRanges["start-in"])
	case cfg.Target == "":
		return usageErr("k8s: needs --target: every shard connects to one server")
	}
	for _, n := range []string{"shard", "start-at", "shard-out"} {
		if fs.Changed(n) {
			return usageErr("--%s: the manifests set it for every pod; drop it", n)
		}
	}
	// A pod's files go with it, and its root is read-only: the shards'
	// summaries come back through kubectl logs (--shard-out -).
	for _, n := range []string{"json", "junit", "prom"} {
		if fs.Changed(n) {
			return usageErr("--%s: a pod's files vanish with it (and its root is read-only): its summary comes back through kubectl logs, and merge writes this report (connlimit merge - --%s FILE)", n, n)
		}
	}
	for _, n := range []string{"csv", "timeline", "plot"} {
		if fs.Changed(n) {
			return usageErr("--%s: a pod's files vanish with it (and its root is read-only); the per-attempt CSV, the timeline and the chart are for shards run where their files stay (run --shard I/S --%s FILE, then merge)", n, n)
		}
	}
	for _, n := range builtinOnly {
		if fs.Changed(n) {
			return usageErr("--%s describes the built-in target; shards run against --target", n)
		}
	}
	// Every run flag is checked as run checks it; the shard's own are the
	// manifests', and the gates merge's.
	runChanged := func(n string) bool {
		return fs.Changed(n) && !slices.Contains(shardOwned, n) && !slices.Contains(gateFlags, n)
	}
	if _, err := cfg.engineConfig(runChanged); err != nil {
		return err
	}
	var runArgs, mergeArgs []string
	fs.Visit(func(f *pflag.Flag) {
		switch {
		case slices.Contains([]string{"image", "name", "namespace", "start-in"}, f.Name), slices.Contains(shardOwned, f.Name):
		case slices.Contains(gateFlags, f.Name):
			mergeArgs = append(mergeArgs, flagArgs(f)...)
		default:
			runArgs = append(runArgs, flagArgs(f)...)
		}
	})
	now := time.Now()
	c := k8s.Config{Name: *name, Namespace: *namespace, Image: *image, Shards: cfg.Shards, Connections: cfg.Connections,
		RunArgs: runArgs, MergeArgs: mergeArgs, StartAt: now.Add(*startIn).Truncate(time.Second), Now: now}
	if err := c.Check(); err != nil {
		return usageErr("%v", err)
	}
	b, err := c.YAML()
	if err != nil {
		return err
	}
	_, err = stdout.Write(b)
	return err
}

// flagArgs is a flag as a command line gives it, --name=value (a bool's
// value cannot follow it as a word); a slice flag once per value.
func flagArgs(f *pflag.Flag) []string {
	if sv, ok := f.Value.(pflag.SliceValue); ok {
		var out []string
		for _, v := range sv.GetSlice() {
			out = append(out, "--"+f.Name+"="+v)
		}
		return out
	}
	return []string{"--" + f.Name + "=" + f.Value.String()}
}

func dnsLabel(s string) bool {
	if s == "" || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

func k8sMergeRanges() map[string]string {
	m := map[string]string{}
	for k, v := range runRanges {
		m[k] = v
	}
	for k, v := range k8sRanges {
		m[k] = v
	}
	return m
}

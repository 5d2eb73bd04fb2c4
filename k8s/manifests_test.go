package k8s

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func config(shards, conns int) Config {
	now := time.Date(2026, 12, 2, 15, 0, 0, 0, time.UTC)
	return Config{Name: "connlimit-10m", Namespace: "load", Image: "registry.example/connlimit:1", Shards: shards, Connections: conns,
		RunArgs:   []string{"--target=10.0.0.10:443", "--allow-remote=true", "--probe=tls", "--hold=5m0s"},
		MergeArgs: []string{"--expect-limit=none"}, StartAt: now.Add(2 * time.Minute), Now: now}
}

// decode reads the manifests back strictly into the API types: an
// unknown or misspelt field is an error, as kubectl apply --validate=strict.
func decode(t *testing.T, b []byte) (*corev1.Service, *batchv1.Job) {
	t.Helper()
	docs := bytes.Split(b, []byte("\n---\n"))
	if len(docs) != 2 {
		t.Fatalf("%d documents, want a Service and a Job", len(docs))
	}
	var svc corev1.Service
	var job batchv1.Job
	if err := yaml.UnmarshalStrict(docs[0], &svc); err != nil {
		t.Fatalf("Service: %v", err)
	}
	if err := yaml.UnmarshalStrict(docs[1], &job); err != nil {
		t.Fatalf("Job: %v", err)
	}
	return &svc, &job
}

func TestManifests(t *testing.T) {
	for _, tc := range []struct {
		golden         string
		shards, conns  int
		sysctl         bool
		share0, shareN int
	}{
		{"ten-million.yaml", 200, 10_000_000, true, 50000, 50000},
		{"uneven.yaml", 3, 10, false, 4, 3},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			c := config(tc.shards, tc.conns)
			if err := c.Check(); err != nil {
				t.Fatal(err)
			}
			b, err := c.YAML()
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", tc.golden)
			if *update {
				os.WriteFile(golden, b, 0o644)
			}
			if want, err := os.ReadFile(golden); err != nil || !bytes.Equal(b, want) {
				t.Errorf("manifests differ from %s (go test ./k8s -update to accept):\n%s", golden, b)
			}
			svc, job := decode(t, b)
			s := job.Spec
			p := s.Template.Spec
			switch {
			case svc.Spec.ClusterIP != corev1.ClusterIPNone || p.Subdomain != svc.Name:
				t.Errorf("service %+v, subdomain %q: want headless, naming the pods", svc.Spec, p.Subdomain)
			case s.CompletionMode == nil || *s.CompletionMode != batchv1.IndexedCompletion:
				t.Errorf("completionMode %v: want Indexed", s.CompletionMode)
			case *s.Completions != int32(tc.shards) || *s.Parallelism != int32(tc.shards):
				t.Errorf("completions %d, parallelism %d: want %d each", *s.Completions, *s.Parallelism, tc.shards)
			case p.RestartPolicy != corev1.RestartPolicyNever || s.BackoffLimitPerIndex == nil || *s.BackoffLimitPerIndex != 0:
				t.Errorf("restartPolicy %s, backoffLimitPerIndex %v: want Never and 0 (a retried shard would count twice)", p.RestartPolicy, s.BackoffLimitPerIndex)
			case p.Affinity == nil || p.Affinity.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution[0].PodAffinityTerm.TopologyKey != "kubernetes.io/hostname":
				t.Errorf("affinity %+v: want shards spread over nodes", p.Affinity)
			case (len(p.SecurityContext.Sysctls) == 1) != tc.sysctl:
				t.Errorf("sysctls %+v: want ip_local_port_range %v", p.SecurityContext.Sysctls, tc.sysctl)
			}
			args := p.Containers[0].Args
			for _, want := range [][]string{{"--shards", strconv.Itoa(tc.shards)}, {"--start-at", "2026-12-02T15:02:00Z"}, {"--shard-out", "-"}} {
				if i := slices.Index(args, want[0]); i < 0 || args[i+1] != want[1] {
					t.Errorf("args %q: want %s %s", args, want[0], want[1])
				}
			}
			if !slices.Contains(args, "--target=10.0.0.10:443") || slices.Contains(args, "--expect-limit=none") || !strings.Contains(string(b), "connlimit merge - --expect-limit=none") {
				t.Errorf("the gates belong to the merge command, not the shards: %q", args)
			}
			mem := p.Containers[0].Resources.Requests.Memory().Value()
			if want := int64(baseMemory + tc.share0*memoryPerConn); mem < want || mem >= want+1<<20 || mem%(1<<20) != 0 {
				t.Errorf("memory request %d: want %d for %d connections", mem, want, tc.share0)
			}
			if Share(tc.conns, tc.shards, tc.shards-1) != tc.shareN {
				t.Errorf("last share %d, want %d", Share(tc.conns, tc.shards, tc.shards-1), tc.shareN)
			}
		})
	}
}

func TestShareSums(t *testing.T) {
	for _, c := range [][2]int{{10, 3}, {1, 5}, {1_000_000, 7}, {7, 7}, {0, 2}} {
		sum := 0
		for i := range c[1] {
			sum += Share(c[0], c[1], i)
		}
		if sum != c[0] {
			t.Errorf("N=%d S=%d: shares sum to %d", c[0], c[1], sum)
		}
	}
}

func TestCheckPorts(t *testing.T) {
	if err := config(20, 10_000_000).Check(); err == nil || !strings.Contains(err.Error(), "want --shards 156 or more") {
		t.Errorf("20 shards for ten million: %v", err)
	}
}

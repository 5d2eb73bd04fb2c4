// Package k8s builds the Kubernetes objects that run connlimit's shards:
// an Indexed Job whose pods each run one shard (the index from
// JOB_COMPLETION_INDEX), and a headless Service that names them. The
// objects are k8s.io/api types marshalled to YAML, so what is printed is
// what the API server would decode.
package k8s

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// Config is one sharded run as the user asked for it.
type Config struct {
	Name      string // the Job's and the Service's name
	Namespace string // "" leaves it to kubectl's context
	Image     string
	Shards    int
	// Connections is the whole run's; each pod takes its share.
	Connections int
	// RunArgs are the run flags every shard gets, without the shard flags.
	RunArgs []string
	// MergeArgs are the gate flags, for the merge command in the comment.
	MergeArgs []string
	// StartAt is when every shard starts its ramp.
	StartAt time.Time
	// Now is when the manifests were made, for the comment.
	Now time.Time
}

// Per-connection resources a shard's pod requests: the generator's own
// memory (under 128 bytes a held connection) and the kernel's for its end
// of the socket, which the memory cgroup is charged for (about 4 KiB).
const (
	baseMemory    = 64 << 20
	memoryPerConn = 4<<10 + 128
	// PortsPerSource is the most connections one pod (one source address)
	// can hold to one target address and port: the widest
	// ip_local_port_range, 1024-65535.
	PortsPerSource = 65535 - 1024 + 1
	defaultRange   = 60999 - 32768 + 1
)

// memoryRequest is a pod's memory for share connections, in whole MiB.
func memoryRequest(share int) int64 {
	return (int64(baseMemory+share*memoryPerConn) + 1<<20 - 1) &^ (1<<20 - 1)
}

// Share is shard i's connections: floor(N/S), one more for i < N mod S.
func Share(n, s, i int) int {
	share := n / s
	if i < n%s {
		share++
	}
	return share
}

// Check says whether the run fits the shards: every pod has one source
// address, so its share must fit one address's ports.
func (c Config) Check() error {
	if share := Share(c.Connections, c.Shards, 0); share > PortsPerSource {
		need := (c.Connections + PortsPerSource - 1) / PortsPerSource
		return fmt.Errorf("--shards %d: %d connections a pod exceed the %d ports one pod's address has toward one target port; want --shards %d or more",
			c.Shards, share, PortsPerSource, need)
	}
	return nil
}

// Objects are the Service and the Job.
func (c Config) Objects() (*corev1.Service, *batchv1.Job) {
	labels := map[string]string{"app.kubernetes.io/name": "connlimit", "app.kubernetes.io/instance": c.Name}
	meta := metav1.ObjectMeta{Name: c.Name, Namespace: c.Namespace, Labels: labels}
	svc := &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: meta,
		Spec:       corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, Selector: labels},
	}
	share := Share(c.Connections, c.Shards, 0)
	mem := resource.NewQuantity(memoryRequest(share), resource.BinarySI)
	args := append([]string{"run", "--quiet", "--shards", strconv.Itoa(c.Shards),
		"--start-at", c.StartAt.UTC().Format(time.RFC3339), "--shard-out", "-"}, c.RunArgs...)
	pod := corev1.PodSpec{
		RestartPolicy: corev1.RestartPolicyNever,
		Subdomain:     c.Name, // pods resolve as NAME-I.NAME through the headless Service
		SecurityContext: &corev1.PodSecurityContext{
			RunAsNonRoot: ptr(true), RunAsUser: ptr(int64(65534)), RunAsGroup: ptr(int64(65534)),
		},
		Affinity: &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
			// Preferred, not required: fewer nodes than shards still run.
			PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{
				Weight: 100,
				PodAffinityTerm: corev1.PodAffinityTerm{
					LabelSelector: &metav1.LabelSelector{MatchLabels: labels},
					TopologyKey:   "kubernetes.io/hostname",
				},
			}},
		}},
		Containers: []corev1.Container{{
			Name:  "shard",
			Image: c.Image,
			Args:  args,
			Resources: corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: *mem},
				Limits:   corev1.ResourceList{corev1.ResourceMemory: *resource.NewQuantity(2*mem.Value(), resource.BinarySI)},
			},
			SecurityContext: &corev1.SecurityContext{
				AllowPrivilegeEscalation: ptr(false), ReadOnlyRootFilesystem: ptr(true),
				Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			},
		}},
	}
	if share > defaultRange {
		// The one net sysctl a shard needs, and a safe one: namespaced, and
		// allowed by default since Kubernetes 1.23.
		pod.SecurityContext.Sysctls = []corev1.Sysctl{{Name: "net.ipv4.ip_local_port_range", Value: "1024 65535"}}
	}
	n := int32(c.Shards)
	job := &batchv1.Job{
		TypeMeta:   metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"},
		ObjectMeta: meta,
		Spec: batchv1.JobSpec{
			CompletionMode: ptr(batchv1.IndexedCompletion),
			Completions:    &n,
			Parallelism:    &n,
			// A shard that fails is not retried: a second attempt would
			// count its connections twice.
			BackoffLimitPerIndex: ptr(int32(0)),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       pod,
			},
		},
	}
	return svc, job
}

// YAML is the manifests to apply, with the commands that collect and
// merge the shards as comments.
func (c Config) YAML() ([]byte, error) {
	svc, job := c.Objects()
	var b bytes.Buffer
	ns := ""
	if c.Namespace != "" {
		ns = " -n " + c.Namespace
	}
	fmt.Fprintf(&b, "# connlimit: %d connections from %d shards, made %s.\n", c.Connections, c.Shards, c.Now.UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "# Every shard starts its ramp at %s: apply before then (or make them again).\n", c.StartAt.UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "#   kubectl apply%s -f this.yaml\n", ns)
	fmt.Fprintf(&b, "#   kubectl wait%s --for=condition=complete --timeout=1h job/%s\n", ns, c.Name)
	merge := strings.TrimSpace("connlimit merge - " + strings.Join(c.MergeArgs, " "))
	fmt.Fprintf(&b, "#   kubectl logs%s -l app.kubernetes.io/instance=%s --tail=-1 --max-log-requests=%d | %s\n", ns, c.Name, c.Shards, merge)
	fmt.Fprintf(&b, "# A pod's RLIMIT_NOFILE is its container runtime's (often 1048576); each shard needs its share + 64.\n")
	for i, obj := range []any{svc, job} {
		y, err := yaml.Marshal(obj)
		if err != nil {
			return nil, err
		}
		if i > 0 {
			b.WriteString("---\n")
		}
		b.Write(y)
	}
	return b.Bytes(), nil
}

func ptr[T any](v T) *T { return &v }

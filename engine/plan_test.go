package engine

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/connlimit/connlimit/limits"
)

func TestNewPlan(t *testing.T) {
	const hard = 20000
	per := hard - GeneratorReserve
	nf := limits.NoFile{Soft: hard, Hard: hard}
	tests := []struct {
		name   string
		cfg    Config
		nf     limits.NoFile
		queues error // what ListsQueues says
		want   Plan  // the fields compared; Notes by count
		err    string
	}{
		{name: "one connection", cfg: Config{Connections: 1}, nf: nf,
			want: Plan{Procs: 1, TargetProcs: 1, TargetNoFile: 1024, ConnectTimeout: 2 * time.Second, GreetingTimeout: time.Second, Concurrency: 256, Probe: "greeting"}},
		{name: "exactly one process's worth", cfg: Config{Connections: per}, nf: nf,
			want: Plan{Procs: 1, TargetProcs: 1, TargetNoFile: 1024, ConnectTimeout: 2 * time.Second, GreetingTimeout: time.Second, Concurrency: 256, Probe: "greeting", Sources: make([]netip.Addr, 2)}},
		{name: "one more than a process holds", cfg: Config{Connections: per + 1}, nf: nf,
			want: Plan{Procs: 2, TargetProcs: 2, TargetNoFile: hard, ConnectTimeout: ScaleTimeout, GreetingTimeout: ScaleTimeout, Concurrency: 256,
				PerWorkerConcurrency: true, Probe: "accept", Sources: nil}},
		{name: "a million", cfg: Config{Connections: 1_000_000}, nf: nf,
			want: Plan{Procs: 51, TargetProcs: 51, RampProcs: 16, TargetNoFile: hard, ConnectTimeout: ScaleTimeout, GreetingTimeout: ScaleTimeout,
				Concurrency: 256, PerWorkerConcurrency: true, Probe: "accept", Sources: make([]netip.Addr, 2)}},
		{name: "a million at a rate: every process at once", cfg: Config{Connections: 1_000_000, Rate: 50000}, nf: nf,
			want: Plan{Procs: 51, TargetProcs: 51, RampProcs: 0, TargetNoFile: hard, ConnectTimeout: ScaleTimeout, GreetingTimeout: ScaleTimeout,
				Concurrency: 256, PerWorkerConcurrency: true, Probe: "accept", Sources: make([]netip.Addr, 2)}},
		{name: "a million to one external port", cfg: Config{Connections: 1_000_000, Target: "127.0.0.1:80", Concurrency: 1000, ConnectTimeout: time.Second}, nf: nf,
			want: Plan{Procs: 51, TargetProcs: 51, RampProcs: 16, TargetNoFile: 1024, ConnectTimeout: time.Second, GreetingTimeout: ScaleTimeout,
				Concurrency: 1000, Probe: "connect", Sources: make([]netip.Addr, 84)}},
		{name: "no sock_diag: the greeting stays", cfg: Config{Connections: per + 1}, nf: nf, queues: errors.New("EPROTONOSUPPORT"),
			want: Plan{Procs: 2, TargetProcs: 2, TargetNoFile: hard, ConnectTimeout: ScaleTimeout, GreetingTimeout: ScaleTimeout, Concurrency: 256,
				PerWorkerConcurrency: true, Probe: "greeting"}},
		{name: "hard limit below the target's default", cfg: Config{Connections: 200}, nf: limits.NoFile{Soft: 300, Hard: 300},
			want: Plan{Procs: 1, TargetProcs: 1, TargetNoFile: 300, ConnectTimeout: 2 * time.Second, GreetingTimeout: time.Second, Concurrency: 256, Probe: "greeting"}},
		{name: "hard limit one above the reserve", cfg: Config{Connections: 2}, nf: limits.NoFile{Soft: GeneratorReserve + 1, Hard: GeneratorReserve + 1},
			want: Plan{Procs: 2, TargetProcs: 2, TargetNoFile: GeneratorReserve + 1, ConnectTimeout: ScaleTimeout, GreetingTimeout: ScaleTimeout, Concurrency: 256,
				PerWorkerConcurrency: true, Probe: "accept"}},
		{name: "asked ramp: all", cfg: Config{Connections: 1_000_000, RampProcs: RampAll}, nf: nf,
			want: Plan{Procs: 51, TargetProcs: 51, TargetNoFile: hard, ConnectTimeout: ScaleTimeout, GreetingTimeout: ScaleTimeout,
				Concurrency: 256, PerWorkerConcurrency: true, Probe: "accept", Sources: make([]netip.Addr, 2)}},
		{name: "--nofile keeps one process", cfg: Config{Connections: 30000, NoFile: 100}, nf: nf,
			want: Plan{Procs: 1, TargetProcs: 2, TargetNoFile: hard, ConnectTimeout: 2 * time.Second, GreetingTimeout: time.Second, Concurrency: 256, Probe: "accept", Sources: make([]netip.Addr, 2)}},
		{name: "--nofile with --procs 2", cfg: Config{Connections: 100, NoFile: 100, Procs: 2}, nf: nf, err: "--nofile"},
		{name: "too few processes", cfg: Config{Connections: 100000, Procs: 2}, nf: nf, err: "want at least 6"},
		{name: "a forwarder with two targets", cfg: Config{Connections: 100, TargetProcs: 2, Forward: true}, nf: nf, err: "--forward"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := NewPlan(PlanInput{Config: tc.cfg, NoFile: tc.nf, NumCPU: 2, ListsQueues: func() error { return tc.queues }})
			if tc.err != "" {
				var ue *UsageError
				if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want a usage error naming %s", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			w := tc.want
			got := []any{p.Procs, p.TargetProcs, p.RampProcs, p.TargetNoFile, p.ConnectTimeout, p.GreetingTimeout, p.Concurrency, p.PerWorkerConcurrency, p.Probe, len(p.Sources)}
			want := []any{w.Procs, w.TargetProcs, w.RampProcs, w.TargetNoFile, w.ConnectTimeout, w.GreetingTimeout, w.Concurrency, w.PerWorkerConcurrency, w.Probe, len(w.Sources)}
			for i := range got {
				if got[i] != want[i] {
					t.Errorf("procs, target procs, ramp, target nofile, timeouts, concurrency, per worker, probe, sources:\n got %v\nwant %v", got, want)
					break
				}
			}
			if len(p.Sources) > 0 && p.Sources[0].String() != "127.0.0.2" {
				t.Errorf("sources start at %s", p.Sources[0])
			}
		})
	}
}

// The plan's choices land in the run's copy of the config; the caller's is untouched.
func TestPlanApply(t *testing.T) {
	cfg := Config{Connections: 50000}
	p, err := NewPlan(PlanInput{Config: cfg, NoFile: limits.NoFile{Soft: 20000, Hard: 20000}, NumCPU: 2})
	if err != nil {
		t.Fatal(err)
	}
	run := p.apply(cfg)
	if run.Procs != 3 || run.TargetProcs != 3 || run.Probe != "accept" || !run.Behavior.Silent || run.ConnectTimeout != ScaleTimeout || len(run.Sources) != 2 {
		t.Errorf("applied %+v", run)
	}
	if cfg.Procs != 0 || cfg.Probe != "" || cfg.Sources != nil {
		t.Errorf("the caller's config changed: %+v", cfg)
	}
}

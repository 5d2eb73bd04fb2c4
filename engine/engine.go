package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"

	"github.com/connlimit/connlimit/internal/sockaddr"
	"github.com/connlimit/connlimit/limits"
)

// TargetRange is what Config.Target accepts, for messages.
const TargetRange = "HOST:PORT of a running server, such as 127.0.0.1:8080 (loopback unless --allow-remote)"

// Run makes one run as cfg asks and writes its summary to env.Stdout and
// its report files. It returns once every process it started is reaped.
// When ctx ends the run stops, still writes its reports, and returns
// context.Cause(ctx). A run that completed with a gate failed returns a
// *GateError; input that cannot be run, a *UsageError; anything else is
// the environment's or the run's.
func Run(ctx context.Context, cfg Config, env Env) error {
	if env.ProcRoot == "" {
		env.ProcRoot = limits.DefaultProcRoot
	}
	if env.Stdout == nil {
		env.Stdout = io.Discard
	}
	if env.Stderr == nil {
		env.Stderr = io.Discard
	}
	if cfg.Shard != nil && cfg.Connections == 0 {
		return emptyShard(&cfg, env)
	}
	// Pre-flight: read the limits (the inherited soft limit before any
	// Setrlimit), then make sure every process fits under the hard limit.
	inh, inhFrom := limits.InheritedSoft(ctx, env.ProcRoot)
	nf, err := limits.ReadNoFile()
	if err != nil {
		return err
	}
	nf.Inherited, nf.InheritedFrom = inh, inhFrom
	sysctls, _ := limits.ReadSysctls(env.ProcRoot) // unreadable values stay -1 and are shown so
	// A hard limit is the environment's, not the caller's fault, unless no
	// hard limit could be that high.
	aboveHard := func(flag string, v uint64) error {
		if sysctls.NrOpen > 0 && v > uint64(sysctls.NrOpen) {
			return usageErr("--%s %d: is above fs.nr_open %d, the most any hard limit can be; want at most the hard limit %d", flag, v, sysctls.NrOpen, nf.Hard)
		}
		return fmt.Errorf("--%s %d is above the hard RLIMIT_NOFILE %d: lower it to at most %d, or raise the hard limit (as root: ulimit -Hn %d; systemd: LimitNOFILE=%d)",
			flag, v, nf.Hard, nf.Hard, v, v)
	}
	for _, f := range []struct {
		flag string
		v    uint64
	}{{"target-nofile", cfg.TargetNoFile}, {"forward-nofile", cfg.ForwardNoFile}, {"nofile", cfg.NoFile}} {
		if f.v > nf.Hard && (f.flag != "target-nofile" || cfg.Target == "") {
			return aboveHard(f.flag, f.v)
		}
	}
	if !cfg.SkipMemoryCheck {
		if err := fitCheck(&cfg, sysctls, env.ProcRoot); err != nil {
			return err
		}
	}
	plan, err := NewPlan(PlanInput{Config: cfg, NoFile: nf, NumCPU: runtime.NumCPU(), ListsQueues: sockDiagAnswers})
	if err != nil {
		return err
	}
	if !cfg.Quiet {
		for _, n := range plan.Notes {
			fmt.Fprintf(env.Stderr, "connlimit: %s\n", n)
		}
	}
	if len(cfg.Sources) == 0 && len(plan.Sources) > 0 {
		if err := sockaddr.CheckLocal(plan.Sources); err != nil {
			return fmt.Errorf("source addresses for %d connections: %w; pass --source-ips", cfg.Connections, err)
		}
	}
	run := plan.apply(cfg)
	if run.NoFile == 0 && run.Procs == 1 {
		need := uint64(run.Connections) + GeneratorReserve
		raised, err := limits.EnsureSoft(need)
		if err != nil {
			var hl *limits.HardLimitError
			if errors.As(err, &hl) && nf.Hard <= GeneratorReserve {
				return fmt.Errorf("the hard RLIMIT_NOFILE %d leaves no room for connections beside the %d descriptors the generator keeps for itself: raise it (as root: ulimit -Hn %d; systemd: LimitNOFILE=%d)",
					nf.Hard, GeneratorReserve, need, need)
			}
			if errors.As(err, &hl) {
				return fmt.Errorf("the generator %v (%d connections + %d for itself); or lower --connections to %d, or let --procs auto spread them over processes",
					err, run.Connections, GeneratorReserve, int(nf.Hard)-GeneratorReserve)
			}
			return fmt.Errorf("raise the generator's soft limit to %d: %w", need, err)
		}
		nf.Soft = raised.Soft
	}

	outs, err := openOutputs(&run, env.Temps)
	if err != nil {
		return err
	}
	defer outs.abort() // after Commit this only cleans up what failed
	return runLoad(ctx, &run, plan, env, outs, nf, sysctls)
}

// sockDiagAnswers asks sock_diag for the listeners on one port: --probe
// accept needs it after the ramp, so a default must not find out then.
func sockDiagAnswers() error {
	d, err := limits.OpenSockDiag()
	if err != nil {
		return err
	}
	defer d.Close()
	_, err = d.Listeners(1)
	return err
}

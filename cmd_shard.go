package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/connlimit/connlimit/engine"
	"github.com/connlimit/connlimit/k8s"
)

// shardFlags are run's flags for one shard of a larger run.
type shardFlags struct {
	Shard    string // I/S
	Shards   int    // S, with I from the environment
	StartAt  string // RFC 3339
	ShardOut string
}

const maxShards = 10000

var shardRanges = map[string]string{
	"shard":     fmt.Sprintf("I/S with 0 <= I < S <= %d, such as 2/8", maxShards),
	"shards":    fmt.Sprintf("an integer from 1 to %d, the index taken from JOB_COMPLETION_INDEX (a Kubernetes Indexed Job) or SLURM_ARRAY_TASK_ID", maxShards),
	"start-at":  "an RFC 3339 time at most 24h from now, such as 2026-12-02T15:04:05Z; only with --shard or --shards",
	"shard-out": "a file path, or - for the last line of stdout; only with --shard or --shards",
}

// indexEnv are where a shard finds its index with --shards, in order.
var indexEnv = []string{"JOB_COMPLETION_INDEX", "SLURM_ARRAY_TASK_ID"}

// shard resolves the shard flags into ec: its share of the connections and
// the rate, and the run's digest every shard shares. now is for --start-at.
func (f shardFlags) shard(changed func(string) bool, ec *engine.Config, now time.Time) error {
	set := changed("shard") || changed("shards")
	if !set {
		for _, name := range []string{"start-at", "shard-out"} {
			if changed(name) {
				return usageErr("--%s: only with --shard I/S or --shards S (it describes one shard of a larger run)", name)
			}
		}
		return nil
	}
	var idx, n int
	switch {
	case changed("shard") && changed("shards"):
		return usageErr("--shard and --shards: give one (--shards takes the index from %s)", strings.Join(indexEnv, " or "))
	case changed("shard"):
		i, s, ok := strings.Cut(f.Shard, "/")
		var err1, err2 error
		idx, err1 = strconv.Atoi(i)
		n, err2 = strconv.Atoi(s)
		if !ok || err1 != nil || err2 != nil || n < 1 || n > maxShards || idx < 0 || idx >= n {
			return usageErr("--shard %q: want %s", f.Shard, shardRanges["shard"])
		}
	default:
		n = f.Shards
		if n < 1 || n > maxShards {
			return usageErr("--shards %d: want %s", n, shardRanges["shards"])
		}
		from := ""
		for _, name := range indexEnv {
			if v, ok := os.LookupEnv(name); ok {
				from = name
				i, err := strconv.Atoi(v)
				if err != nil || i < 0 || i >= n {
					return usageErr("--shards %d: %s=%q: want an index from 0 to %d", n, name, v, n-1)
				}
				idx = i
				break
			}
		}
		if from == "" {
			return usageErr("--shards %d: no shard index: set %s, or give --shard I/%d", n, strings.Join(indexEnv, " or "), n)
		}
	}
	if ec.Target == "" {
		return usageErr("--shard: needs --target: the shards of a run share one server (a built-in target each would be S runs, not one)")
	}
	if g := ec.Gates; g.HasRequireServed || g.ExpectLimit != "" || g.MaxConnectP99 > 0 {
		return usageErr("--shard: the CI gates judge the whole run: give --require-served, --expect-limit and --max-connect-p99 to connlimit merge")
	}
	sh := &engine.Shard{Index: idx, Count: n, TotalConnections: ec.Connections, TotalRate: ec.Rate}
	if changed("start-at") {
		t, err := time.Parse(time.RFC3339Nano, f.StartAt)
		if err != nil || t.After(now.Add(24*time.Hour)) {
			return usageErr("--start-at %q: want %s", f.StartAt, shardRanges["start-at"])
		}
		sh.StartAt = t
	}
	sh.Host, _ = os.Hostname()
	// Every shard of the run computes the same digest from the flags they share.
	sum := sha256.Sum256(fmt.Appendf(nil, "%s|%s|%d|%g|%d|%s|%s", ec.Target, ec.Probe, ec.Connections, ec.Rate, n, f.StartAt, ec.Hold))
	sh.Run = hex.EncodeToString(sum[:6])
	share := k8s.Share(ec.Connections, n, idx)
	if ec.Rate > 0 {
		ec.Rate = ec.Rate * float64(share) / float64(ec.Connections)
	}
	ec.Connections = share
	if len(ec.Sources) > 0 && n > 1 {
		if len(ec.Sources) < n {
			return usageErr("--source-ips: %d addresses for %d shards: want at least one per shard (each takes every %dth, from its index)", len(ec.Sources), n, n)
		}
		var mine = ec.Sources[:0:0]
		for j := idx; j < len(ec.Sources); j += n {
			mine = append(mine, ec.Sources[j])
		}
		ec.Sources = mine
	}
	ec.Shard, ec.ShardOut = sh, f.ShardOut
	return nil
}

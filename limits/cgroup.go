package limits

import (
	"bufio"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/procfs"
)

// DefaultCgroupRoot is where the cgroup file systems are mounted.
const DefaultCgroupRoot = "/sys/fs/cgroup"

// CgroupPaths are the cgroup directories that hold a process's task (pids)
// and memory limits, under a cgroup root: on cgroup v1 (one hierarchy per
// controller) pids/<path> and memory/<path>, on v2 (one tree) <path> for both.
// An empty path means the controller was not found.
type CgroupPaths struct {
	Pids, Memory string
	V2           bool
	// Unit is the systemd unit the process runs in ("nginx.service"), when
	// a cgroup path names one.
	Unit string
}

// CgroupOf finds pid's cgroups from procRoot/PID/cgroup: a v1 line for a
// controller wins over the v2 line (hybrid hosts mount both, and the
// controllers live in v1).
func CgroupOf(procRoot, cgroupRoot string, pid int) (CgroupPaths, error) {
	fs, err := procfs.NewFS(procRoot)
	if err != nil {
		return CgroupPaths{}, err
	}
	p, err := fs.Proc(pid)
	if err != nil {
		return CgroupPaths{}, err
	}
	cgs, err := p.Cgroups()
	if err != nil {
		return CgroupPaths{}, err
	}
	var cp CgroupPaths
	var v2 string
	for _, c := range cgs {
		if base := filepath.Base(c.Path); strings.HasSuffix(base, ".service") || strings.HasSuffix(base, ".scope") && cp.Unit == "" {
			cp.Unit = base
		}
		switch {
		case c.HierarchyID == 0:
			v2 = c.Path
		case slices.Contains(c.Controllers, "pids"):
			cp.Pids = filepath.Join(cgroupRoot, "pids", c.Path)
		case slices.Contains(c.Controllers, "memory"):
			cp.Memory = filepath.Join(cgroupRoot, "memory", c.Path)
		}
	}
	if cp.Pids == "" && cp.Memory == "" && v2 != "" {
		if _, err := os.Stat(filepath.Join(cgroupRoot, "cgroup.controllers")); err == nil {
			dir := filepath.Join(cgroupRoot, v2)
			cp = CgroupPaths{Pids: dir, Memory: dir, V2: true, Unit: cp.Unit}
		}
	}
	return cp, nil
}

// Cgroup is what a process's cgroups say about its task and memory limits.
// A figure that cannot be read is -1; a limit of "max" is -1 too.
type Cgroup struct {
	PidsMax, PidsCurrent int64
	// PidsRefused is the forks and thread starts refused at pids.max
	// (pids.events "max").
	PidsRefused int64
	MemoryLimit int64 // bytes
	MemoryUsage int64 // bytes now (v2 memory.current, v1 memory.usage_in_bytes)
	// MemoryFailcnt is the times usage hit the limit (v1 memory.failcnt,
	// v2 memory.events "max"); OOMKills the processes the OOM killer
	// killed there (v1 memory.oom_control, v2 memory.events "oom_kill").
	MemoryFailcnt, OOMKills int64
}

// Read reads the figures now.
func (cp CgroupPaths) Read() Cgroup {
	c := Cgroup{PidsMax: -1, PidsCurrent: -1, PidsRefused: -1, MemoryLimit: -1, MemoryUsage: -1, MemoryFailcnt: -1, OOMKills: -1}
	if cp.Pids != "" {
		c.PidsMax = readLimitFile(filepath.Join(cp.Pids, "pids.max"))
		c.PidsCurrent = readLimitFile(filepath.Join(cp.Pids, "pids.current"))
		c.PidsRefused = keyed(filepath.Join(cp.Pids, "pids.events"), "max")
	}
	if cp.Memory != "" {
		if cp.V2 {
			c.MemoryLimit = readLimitFile(filepath.Join(cp.Memory, "memory.max"))
			c.MemoryUsage = readLimitFile(filepath.Join(cp.Memory, "memory.current"))
			c.MemoryFailcnt = keyed(filepath.Join(cp.Memory, "memory.events"), "max")
			c.OOMKills = keyed(filepath.Join(cp.Memory, "memory.events"), "oom_kill")
		} else {
			c.MemoryLimit = readLimitFile(filepath.Join(cp.Memory, "memory.limit_in_bytes"))
			c.MemoryUsage = readLimitFile(filepath.Join(cp.Memory, "memory.usage_in_bytes"))
			c.MemoryFailcnt = readLimitFile(filepath.Join(cp.Memory, "memory.failcnt"))
			c.OOMKills = keyed(filepath.Join(cp.Memory, "memory.oom_control"), "oom_kill")
		}
	}
	return c
}

// Since is c's counters' growth since base (-1 where either is unknown),
// with c's limits.
func (c Cgroup) Since(base Cgroup) Cgroup {
	d := func(now, then int64) int64 {
		if now < 0 || then < 0 {
			return -1
		}
		return now - then
	}
	c.PidsRefused, c.MemoryFailcnt, c.OOMKills = d(c.PidsRefused, base.PidsRefused), d(c.MemoryFailcnt, base.MemoryFailcnt), d(c.OOMKills, base.OOMKills)
	return c
}

// readLimitFile reads one number; "max" and anything unreadable are -1.
func readLimitFile(path string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return -1
	}
	v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return -1
	}
	return v
}

// keyed reads the value of key in a "key value" file (pids.events,
// memory.events, memory.oom_control); -1 when it cannot.
func keyed(path, key string) int64 {
	f, err := os.Open(path)
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if ok && k == key {
			if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
				return n
			}
		}
	}
	return -1
}

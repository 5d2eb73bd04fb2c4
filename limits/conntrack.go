package limits

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/prometheus/procfs"
)

// Conntrack is the netfilter connection-tracking table as this network
// namespace sees it. When it is full, new SYNs are dropped before any
// listener: clients time out and the listen counters do not move.
type Conntrack struct {
	Count int64 // nf_conntrack_count: entries in this namespace
	Max   int64 // nf_conntrack_max: the table's size (global; a namespace reads the host's)
	// Drop, EarlyDrop and InsertFailed are summed over CPUs from
	// /proc/net/stat/nf_conntrack: new connections refused an entry.
	Drop, EarlyDrop, InsertFailed uint64
}

// ReadConntrack reads the table's figures under procRoot. It fails when
// connection tracking is not loaded (the files are missing).
func ReadConntrack(procRoot string) (Conntrack, error) {
	var c Conntrack
	for _, f := range []struct {
		name string
		dst  *int64
	}{{"nf_conntrack_count", &c.Count}, {"nf_conntrack_max", &c.Max}} {
		b, err := os.ReadFile(filepath.Join(procRoot, "sys/net/netfilter", f.name))
		if err != nil {
			return c, fmt.Errorf("conntrack: %w", err)
		}
		if *f.dst, err = strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err != nil {
			return c, fmt.Errorf("conntrack: %s: %w", f.name, err)
		}
	}
	fs, err := procfs.NewFS(procRoot)
	if err != nil {
		return c, fmt.Errorf("conntrack: %w", err)
	}
	stats, err := fs.ConntrackStat()
	if err != nil {
		return c, fmt.Errorf("conntrack: %w", err)
	}
	for _, s := range stats {
		c.Drop += s.Drop
		c.EarlyDrop += s.EarlyDrop
		c.InsertFailed += s.InsertFailed
	}
	return c, nil
}

// Refused is how many new connections the table refused between base and c.
func (c Conntrack) Refused(base Conntrack) uint64 {
	return c.Drop - base.Drop + c.EarlyDrop - base.EarlyDrop + c.InsertFailed - base.InsertFailed
}

// PrivateNetNS says whether this process's network namespace is not the
// one of PID 1 under procRoot: a namespace of its own, where nothing else
// moves the kernel's counters. False when either cannot be read.
func PrivateNetNS(procRoot string) bool {
	self, err1 := os.Readlink(filepath.Join(procRoot, "self/ns/net"))
	init, err2 := os.Readlink(filepath.Join(procRoot, "1/ns/net"))
	return err1 == nil && err2 == nil && self != init
}

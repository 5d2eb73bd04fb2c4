package limits

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Tasks is a process's standing against RLIMIT_NPROC, which caps the
// processes and threads of its real user, all its processes together: a
// thread-per-connection server at the cap cannot start the next
// connection's thread.
type Tasks struct {
	UID       int    // real user
	NProcSoft uint64 // its RLIMIT_NPROC (soft); ^0 for unlimited
	Threads   int    // its own
	UserTasks int    // every task of UID on the machine
}

// ReadTasks reads pid's RLIMIT_NPROC and thread count, and counts every
// task of its real user under procRoot.
func ReadTasks(procRoot string, pid int) (Tasks, error) {
	dir := filepath.Join(procRoot, strconv.Itoa(pid))
	b, err := os.ReadFile(filepath.Join(dir, "limits"))
	if err != nil {
		return Tasks{}, err
	}
	var t Tasks
	if t.NProcSoft, err = limitLine(b, "Max processes"); err != nil {
		return Tasks{}, err
	}
	if t.UID, t.Threads, err = statusUIDThreads(filepath.Join(dir, "status")); err != nil {
		return Tasks{}, err
	}
	ents, err := os.ReadDir(procRoot)
	if err != nil {
		return Tasks{}, err
	}
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		if uid, n, err := statusUIDThreads(filepath.Join(procRoot, e.Name(), "status")); err == nil && uid == t.UID {
			t.UserTasks += n
		}
	}
	return t, nil
}

// AtLimit says whether the user's tasks fill the cap. Root is exempt
// (CAP_SYS_RESOURCE, CAP_SYS_ADMIN), so its cap never explains a failure.
func (t Tasks) AtLimit() bool {
	return t.UID != 0 && t.NProcSoft != ^uint64(0) && uint64(t.UserTasks) >= t.NProcSoft
}

// limitLine is the soft value of a /proc/PID/limits line.
func limitLine(b []byte, name string) (uint64, error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), name); ok {
			if f := strings.Fields(rest); len(f) >= 1 {
				return parseLimit(f[0])
			}
		}
	}
	return 0, fmt.Errorf("limits: no %s line", name)
}

// statusUIDThreads reads the real uid and Threads of /proc/PID/status.
func statusUIDThreads(path string) (uid, threads int, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, err
	}
	uid, threads = -1, -1
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, _ := strings.Cut(line, ":")
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		switch k {
		case "Uid":
			uid, _ = strconv.Atoi(f[0])
		case "Threads":
			threads, _ = strconv.Atoi(f[0])
		}
	}
	if uid < 0 || threads < 0 {
		return 0, 0, fmt.Errorf("%s: no Uid or Threads", path)
	}
	return uid, threads, nil
}

// KernelTasks is the machine's standing against its task limits:
// kernel.threads-max caps every thread on the machine, kernel.pid_max the
// PIDs of a PID namespace (per namespace since Linux 6.14), which a
// process-per-connection server (PostgreSQL, sshd) or a thread-per-connection
// one spends one of per connection. -1: not read.
type KernelTasks struct {
	ThreadsMax int64 `json:"threads_max"` // kernel.threads-max
	Threads    int64 `json:"threads"`     // threads on the machine (/proc/loadavg)
	PidMax     int64 `json:"pid_max"`     // kernel.pid_max, as the target's PID namespace sees it
	Pids       int64 `json:"pids"`        // tasks in that PID namespace (/proc/*/task)
	// PidNamespace is the namespace read ("pid:[4026531836]"); Other says it
	// is the target's, not connlimit's own.
	PidNamespace      string `json:"pid_namespace"`
	OtherPidNamespace bool   `json:"other_pid_namespace"`
	NotRead           string `json:"not_read,omitempty"` // a reading that failed, and why
}

// reservedPids are the PIDs below which the kernel does not wrap: a PID
// namespace can be out of PIDs with up to this many of them free.
const reservedPids = 300

// threadsSlack absorbs the tasks that ended between a refused fork and the
// reading.
const threadsSlack = 16

// AtThreadsMax says whether the machine's threads reach kernel.threads-max.
func (k KernelTasks) AtThreadsMax() bool {
	return k.ThreadsMax > 0 && k.Threads >= 0 && k.Threads+threadsSlack >= k.ThreadsMax
}

// AtPidMax says whether the namespace's tasks leave no PID to allocate.
func (k KernelTasks) AtPidMax() bool {
	return k.PidMax > 0 && k.Pids >= 0 && k.Pids+reservedPids >= k.PidMax
}

// ReadTaskLimits reads the task limits as the PID namespace of pid sees
// them (pid <= 0: the caller's), before a run: for a process in another
// namespace kernel.pid_max is read from inside it, which takes a PID there
// and root (NotRead says why it failed). Count adds the tasks.
func ReadTaskLimits(ctx context.Context, procRoot string, pid int) KernelTasks {
	k := KernelTasks{ThreadsMax: readLimitFile(filepath.Join(procRoot, "sys/kernel/threads-max")),
		PidMax: readLimitFile(filepath.Join(procRoot, "sys/kernel/pid_max")), Threads: -1, Pids: -1}
	own, _ := os.Readlink(filepath.Join(procRoot, "self/ns/pid"))
	k.PidNamespace = own
	if pid <= 0 {
		return k
	}
	theirs, err := os.Readlink(filepath.Join(procRoot, strconv.Itoa(pid), "ns/pid"))
	if err != nil || theirs == own {
		return k
	}
	k.PidNamespace, k.OtherPidNamespace = theirs, true
	if k.PidMax, err = pidMaxIn(ctx, filepath.Join(procRoot, strconv.Itoa(pid), "ns/pid")); err != nil {
		k.NotRead = "kernel.pid_max of the target's PID namespace: " + err.Error()
	}
	return k
}

// Count reads the machine's threads and the tasks in k's PID namespace.
func (k *KernelTasks) Count(procRoot string) {
	if b, err := os.ReadFile(filepath.Join(procRoot, "loadavg")); err == nil {
		// "0.00 0.01 0.05 1/123 4567": runnable/all scheduling entities.
		if f := strings.Fields(string(b)); len(f) >= 4 {
			if _, all, ok := strings.Cut(f[3], "/"); ok {
				if n, err := strconv.ParseInt(all, 10, 64); err == nil {
					k.Threads = n
				}
			}
		}
	}
	ents, err := os.ReadDir(procRoot)
	if err != nil {
		return
	}
	k.Pids = 0
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		if k.OtherPidNamespace {
			if ns, err := os.Readlink(filepath.Join(procRoot, e.Name(), "ns/pid")); err != nil || ns != k.PidNamespace {
				continue
			}
		}
		if ts, err := os.ReadDir(filepath.Join(procRoot, e.Name(), "task")); err == nil {
			k.Pids += int64(len(ts))
		}
	}
}

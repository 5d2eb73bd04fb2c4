package limits

import (
	"bufio"
	"bytes"
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

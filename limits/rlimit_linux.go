package limits

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// ReadNoFile returns the calling process's RLIMIT_NOFILE. Inherited is left 0:
// see InheritedSoft.
func ReadNoFile() (NoFile, error) {
	var r unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &r); err != nil {
		return NoFile{}, os.NewSyscallError("getrlimit", err)
	}
	return NoFile{Soft: r.Cur, Hard: r.Max}, nil
}

// InheritedSoft learns the soft RLIMIT_NOFILE this process was started with,
// and says from where. The Go runtime raises the soft limit at start-up and
// keeps the original only to restore it in children it starts, so a child
// shell's `ulimit -Sn` reports it exactly. That restore is disabled once the
// process calls Setrlimit itself: call this before SetSoft. Without a shell
// (env -i, a scratch image) the parent's /proc/PPID/limits stands in: right
// unless something between the two (prlimit) changed it. It returns 0 and
// the reasons when neither can be read.
func InheritedSoft(ctx context.Context, procRoot string) (uint64, string) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", "ulimit -Sn")
	out, err := cmd.Output()
	if err == nil {
		s := strings.TrimSpace(string(out))
		if s == "unlimited" {
			return unix.RLIM_INFINITY, "child shell ulimit -Sn"
		}
		if v, perr := strconv.ParseUint(s, 10, 64); perr == nil {
			return v, "child shell ulimit -Sn"
		}
		err = fmt.Errorf("it printed %q", s)
	}
	ppid := os.Getppid()
	path := fmt.Sprintf("%s/%d/limits", procRoot, ppid)
	f, ferr := os.Open(path)
	if ferr == nil {
		defer f.Close()
		var soft uint64
		if soft, _, ferr = ParseLimitsNoFile(f); ferr == nil {
			return soft, fmt.Sprintf("the parent's %s; no shell to ask: %v", path, err)
		}
	}
	return 0, fmt.Sprintf("unknown (sh -c 'ulimit -Sn': %v; %s: %v)", err, path, ferr)
}

// SetSoft sets this process's soft RLIMIT_NOFILE to n, keeping the hard limit.
// It fails with an *ErrHardLimit when n is above the hard limit.
func SetSoft(n uint64) (NoFile, error) {
	cur, err := ReadNoFile()
	if err != nil {
		return cur, err
	}
	if n > cur.Hard {
		return cur, &HardLimitError{Need: n, Hard: cur.Hard}
	}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: n, Max: cur.Hard}); err != nil {
		return cur, os.NewSyscallError("setrlimit", err)
	}
	cur.Soft = n
	return cur, nil
}

// EnsureSoft raises the soft limit to at least n and never lowers it.
func EnsureSoft(n uint64) (NoFile, error) {
	cur, err := ReadNoFile()
	if err != nil || cur.Soft >= n {
		return cur, err
	}
	return SetSoft(n)
}

package limits

import (
	"os"

	"golang.org/x/sys/unix"
)

// maxFDTable caps GrowFDTable: the table costs the kernel 8 bytes and two
// bits per slot, so a soft limit in the millions is not reserved up front.
const maxFDTable = 1 << 20

// GrowFDTable makes this process's descriptor table hold descriptors below
// n now (capped at the soft RLIMIT_NOFILE). The kernel doubles the table as
// descriptors are opened, and in a process with more than one thread (every
// Go program) each doubling waits for an RCU grace period (expand_fdtable
// calls synchronize_rcu): 5–10 ms off the CPU, eight times on the way to
// 10,000 descriptors, which cost a ramp a quarter of its speed. One growth
// before the clock starts takes that wait once. The table never shrinks.
func GrowFDTable(n int) error {
	lim, err := ReadNoFile()
	if err != nil {
		return err
	}
	top := int(min(uint64(n), lim.Soft, maxFDTable)) - 1
	if top < 64 { // the table starts with 64 slots
		return nil
	}
	// A descriptor already open there means the table is that big; dup3
	// would close it. Descriptors are numbered lowest-free first, so none
	// opens there between this check and dup3 unless every lower one is taken.
	if _, err := unix.FcntlInt(uintptr(top), unix.F_GETFD, 0); err == nil {
		return nil
	}
	fd, err := unix.Open(os.DevNull, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return os.NewSyscallError("open "+os.DevNull, err)
	}
	defer unix.Close(fd)
	if err := unix.Dup3(fd, top, unix.O_CLOEXEC); err != nil {
		return os.NewSyscallError("dup3", err)
	}
	return os.NewSyscallError("close", unix.Close(top))
}

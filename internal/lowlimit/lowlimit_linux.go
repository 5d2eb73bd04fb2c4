// Package lowlimit stops connlimit at start-up, in one line, when the hard
// RLIMIT_NOFILE is too low for it to run at all.
//
// It must act before any other package's init: a dependency's init that
// opens a file (protobuf's, which client_golang brings, opens the binary)
// starts the Go netpoller, and under a hard limit of a few descriptors the
// runtime cannot create its epoll set and dies with a trace instead of the
// fix. Go initializes packages in import-path order as their imports
// allow, and this one imports only syscall, so it runs before them. That
// is why it exits here, the one exit outside main.
package lowlimit

import "syscall"

// MinNoFile is the least hard limit connlimit starts under: what the
// built-in target needs, and more than the Go runtime's own few (main's
// test keeps it equal to target.MinNoFile).
const MinNoFile = 16

func init() {
	var r syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r) != nil || r.Max >= MinNoFile {
		return
	}
	msg := "connlimit: the hard RLIMIT_NOFILE is " + itoa(r.Max) + ", below the " + itoa(MinNoFile) +
		" descriptors connlimit needs for itself: raise it (as root: ulimit -Hn 1024; systemd: LimitNOFILE=)\n"
	_, _ = syscall.Write(2, []byte(msg))
	syscall.Exit(3) // main's exitRuntime
}

func itoa(n uint64) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		if n /= 10; n == 0 {
			return string(b[i:])
		}
	}
}

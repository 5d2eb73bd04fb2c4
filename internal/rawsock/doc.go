// Package rawsock makes the socket system calls of connlimit's busy loops
// (the generator's and the built-in target's) with syscall.RawSyscall: the
// Go scheduler is not told, so a call the kernel preempts is not mistaken
// for a blocked one.
//
// A call made through syscall.Syscall puts its P in a "syscall" state. With
// a hundred connlimit processes sharing two cores, every call waits for the
// CPU now and then, and the runtime's sysmon thread sees a P "blocked" for
// a tick, takes it back, hands it to another thread and then polls every
// 20 µs: a million-connection ramp made 70,000 context switches a second,
// most of them sysmon's. Every call here returns at once (non-blocking
// sockets) or within a bounded wait (Poll, EpollWait), so the P is never
// held long; errors are the bare syscall.Errno, as golang.org/x/sys/unix
// returns them.
package rawsock

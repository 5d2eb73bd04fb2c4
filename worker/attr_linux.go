package worker

import "syscall"

// childAttr makes a child die with this process, in a process group of its
// own: a terminal's Ctrl-C or hang-up reaches the run, which stops its
// workers in order.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
}

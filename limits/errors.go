package limits

import "fmt"

// HardLimitError says a process asked for more descriptors than its hard
// RLIMIT_NOFILE allows. Only a process with CAP_SYS_RESOURCE can raise the
// hard limit, so the fix is outside this process.
type HardLimitError struct {
	Need, Hard uint64
}

func (e *HardLimitError) Error() string {
	return fmt.Sprintf("needs %d file descriptors but the hard limit (RLIMIT_NOFILE) is %d: "+
		"raise the hard limit (as root: ulimit -Hn %d; systemd: LimitNOFILE=%d) or ask for fewer",
		e.Need, e.Hard, e.Need, e.Need)
}

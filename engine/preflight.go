package engine

import (
	"fmt"

	"github.com/connlimit/connlimit/internal/sockaddr"
	"github.com/connlimit/connlimit/limits"
)

// Kernel and process memory a connection costs, from measurements on this
// kind of machine: a TCP socket with its buffers idle takes about 5 KB of
// kernel memory, so a connection with both ends local about 10 KB; the
// built-in target adds a goroutine and a small buffer (about 4 KB), a
// forwarder two more sockets and two copy buffers.
const (
	kernelPerSocket   = 5 << 10
	targetPerConn     = 4 << 10
	forwarderPerConn  = 2*kernelPerSocket + 2*(8<<10) + 4<<10
	generatorPerConn  = 512
	memoryMarginMin   = 1 << 30
	descriptorsMargin = 1024
)

// fitCheck refuses a run whose connections would not fit in the memory the
// machine has available (less a margin) or in fs.file-max. It is skipped
// when /proc/meminfo cannot be read.
func fitCheck(cfg *Config, sysctls limits.Sysctls, procRoot string) error {
	mem, err := limits.ReadMemory(procRoot)
	if err != nil {
		return nil
	}
	local := cfg.Target == "" || sockaddr.IsLoopbackHostPort(cfg.Target)
	sockets := uint64(cfg.Connections)
	perConn := uint64(kernelPerSocket + generatorPerConn)
	what := "5 KB of kernel memory for the client socket"
	if local {
		sockets *= 2
		perConn += kernelPerSocket
		what = "10 KB of kernel memory for both ends"
	}
	if cfg.Target == "" {
		perConn += targetPerConn
		what += ", 4 KB in the built-in target"
	}
	if cfg.Forward {
		sockets += 2 * uint64(cfg.Connections)
		perConn += forwarderPerConn
		what += ", 30 KB in the forwarder"
	}
	need := uint64(cfg.Connections) * perConn
	margin := max(uint64(memoryMarginMin), mem.Total/10)
	if need+margin > mem.Available {
		return fmt.Errorf("%d connections need about %s (%s) but MemAvailable is %s less a margin of %s: lower --connections, or pass --skip-memory-check if you know better",
			cfg.Connections, gib(need), what, gib(mem.Available), gib(margin))
	}
	if fm, used := sysctls.FileMax, sysctls.FileNrAllocated; fm > 0 && used >= 0 {
		if free := uint64(fm - used); sockets+descriptorsMargin > free {
			return fmt.Errorf("%d connections need about %d descriptors but fs.file-max leaves %d free: raise fs.file-max (sysctl -w fs.file-max=N), lower --connections, or pass --skip-memory-check",
				cfg.Connections, sockets, free)
		}
	}
	return nil
}

func gib(b uint64) string { return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30)) }

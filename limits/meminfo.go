package limits

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Memory is what /proc/meminfo says the machine can give, in bytes.
type Memory struct {
	Total     uint64 `json:"mem_total"`
	Available uint64 `json:"mem_available"`
}

// ParseMeminfo reads MemTotal and MemAvailable (kB) from /proc/meminfo.
func ParseMeminfo(r io.Reader) (Memory, error) {
	var m Memory
	found := 0
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || (name != "MemTotal" && name != "MemAvailable") {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			return m, fmt.Errorf("meminfo: %s without a value", name)
		}
		kb, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return m, fmt.Errorf("meminfo %s: %w", name, err)
		}
		if name == "MemTotal" {
			m.Total = kb << 10
		} else {
			m.Available = kb << 10
		}
		found++
	}
	if err := sc.Err(); err != nil {
		return m, err
	}
	if found < 2 {
		return m, fmt.Errorf("meminfo: no MemTotal or MemAvailable")
	}
	return m, nil
}

// ReadMemory reads procRoot/meminfo.
func ReadMemory(procRoot string) (Memory, error) {
	f, err := os.Open(filepath.Join(procRoot, "meminfo"))
	if err != nil {
		return Memory{}, err
	}
	defer f.Close()
	return ParseMeminfo(f)
}

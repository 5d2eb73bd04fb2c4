//go:build !linux

package limits

import (
	"io"
	"os"
	"strconv"
)

// countDir counts the numeric entries of an fd directory, and those below limit.
func statCount(*os.File) (int, bool) { return 0, false }

func countDir(dir *os.File, _ []byte, limit uint64) (total, below int, err error) {
	if _, err := dir.Seek(0, io.SeekStart); err != nil {
		return 0, 0, err
	}
	names, err := dir.Readdirnames(-1)
	for _, name := range names {
		if v, perr := strconv.ParseUint(name, 10, 64); perr == nil {
			total++
			if v < limit {
				below++
			}
		}
	}
	return total, below, err
}

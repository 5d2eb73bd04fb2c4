package engine

import (
	"strings"
	"testing"

	"github.com/connlimit/connlimit/limits"
)

func TestFitCheck(t *testing.T) {
	const procRoot = "../limits/testdata/proc" // MemTotal 2 GiB, MemAvailable 1.5 GiB
	if err := fitCheck(&Config{Connections: 1000}, limits.Sysctls{FileMax: -1, FileNrAllocated: -1}, procRoot); err != nil {
		t.Errorf("1000 connections refused: %v", err)
	}
	if err := fitCheck(&Config{Connections: 100000}, limits.Sysctls{FileMax: -1, FileNrAllocated: -1}, procRoot); err == nil || !strings.Contains(err.Error(), "MemAvailable is 1.5 GiB") {
		t.Errorf("100000 connections in 1.5 GiB: %v", err)
	}
	// Descriptors: fs.file-max nearly used up.
	err := fitCheck(&Config{Connections: 1000}, limits.Sysctls{FileMax: 3000, FileNrAllocated: 1500}, procRoot)
	if err == nil || !strings.Contains(err.Error(), "fs.file-max leaves 1500 free") {
		t.Errorf("fitCheck with 1500 descriptors free = %v", err)
	}
}

package limits

import (
	"os"
	"path/filepath"
	"testing"
)

func TestReadTasks(t *testing.T) {
	root := t.TempDir()
	write := func(pid, uid, threads string, limits string) {
		dir := filepath.Join(root, pid)
		os.MkdirAll(dir, 0o755)
		os.WriteFile(filepath.Join(dir, "status"), []byte("Name:\tx\nUid:\t"+uid+"\t"+uid+"\t"+uid+"\t"+uid+"\nThreads:\t"+threads+"\n"), 0o644)
		if limits != "" {
			os.WriteFile(filepath.Join(dir, "limits"), []byte(limits), 0o644)
		}
	}
	write("10", "106", "37", "Limit                     Soft Limit           Hard Limit           Units\nMax processes             40                   40                   processes\n")
	write("11", "106", "3", "")
	write("12", "0", "500", "")
	tk, err := ReadTasks(root, 10)
	if err != nil {
		t.Fatal(err)
	}
	if tk.UID != 106 || tk.NProcSoft != 40 || tk.Threads != 37 || tk.UserTasks != 40 || !tk.AtLimit() {
		t.Errorf("read %+v", tk)
	}
	if (Tasks{UID: 0, NProcSoft: 40, UserTasks: 500}).AtLimit() {
		t.Error("root's tasks count against RLIMIT_NPROC")
	}
}

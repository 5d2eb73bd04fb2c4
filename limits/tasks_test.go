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

func TestKernelTasks(t *testing.T) {
	root := t.TempDir()
	mk := func(path, content string) {
		p := filepath.Join(root, path)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mk("sys/kernel/threads-max", "192726\n")
	mk("sys/kernel/pid_max", "400\n")
	mk("loadavg", "0.10 0.20 0.30 2/531 9999\n")
	for pid, tasks := range map[string]int{"1": 1, "20": 3, "300": 2} {
		for i := range tasks {
			os.MkdirAll(filepath.Join(root, pid, "task", pid+"-"+string(rune('a'+i))), 0o755)
		}
		os.Symlink("pid:[1]", filepath.Join(root, pid, "ns/pid"))
	}
	os.MkdirAll(filepath.Join(root, "self/ns"), 0o755)
	os.Symlink("pid:[1]", filepath.Join(root, "self/ns/pid"))
	os.MkdirAll(filepath.Join(root, "20/ns"), 0o755)
	os.Symlink("pid:[1]", filepath.Join(root, "20/ns/pid"))

	k := ReadTaskLimits(t.Context(), root, 20)
	k.Count(root)
	want := KernelTasks{ThreadsMax: 192726, Threads: 531, PidMax: 400, Pids: 6, PidNamespace: "pid:[1]"}
	if k != want {
		t.Errorf("read %+v, want %+v", k, want)
	}
	for _, tc := range []struct {
		k             KernelTasks
		pids, threads bool
	}{
		{KernelTasks{PidMax: 400, Pids: 100, ThreadsMax: 1000, Threads: 200}, true, false},   // within the 300 PIDs the kernel keeps below its wrap
		{KernelTasks{PidMax: 32768, Pids: 100, ThreadsMax: 1000, Threads: 990}, false, true}, // threads-max, a few ended since
		{KernelTasks{PidMax: 32768, Pids: 100, ThreadsMax: 192726, Threads: 200}, false, false},
		{KernelTasks{PidMax: -1, Pids: -1, ThreadsMax: -1, Threads: -1}, false, false}, // not read
	} {
		if tc.k.AtPidMax() != tc.pids || tc.k.AtThreadsMax() != tc.threads {
			t.Errorf("%+v: at pid_max %v, threads-max %v", tc.k, tc.k.AtPidMax(), tc.k.AtThreadsMax())
		}
	}
}

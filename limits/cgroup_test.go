package limits

import (
	"os"
	"path/filepath"
	"testing"
)

func TestCgroupOf(t *testing.T) {
	root := t.TempDir()
	pids := filepath.Join(root, "pids/system.slice/nginx.service")
	mem := filepath.Join(root, "memory/system.slice/nginx.service")
	os.MkdirAll(pids, 0o755)
	os.MkdirAll(mem, 0o755)
	for path, v := range map[string]string{
		filepath.Join(pids, "pids.max"): "20\n", filepath.Join(pids, "pids.current"): "20\n", filepath.Join(pids, "pids.events"): "max 7\n",
		filepath.Join(mem, "memory.limit_in_bytes"): "50331648\n", filepath.Join(mem, "memory.failcnt"): "75\n",
		filepath.Join(mem, "memory.oom_control"): "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n",
	} {
		os.WriteFile(path, []byte(v), 0o644)
	}
	cp, err := CgroupOf("testdata/cgproc", root, 42)
	if err != nil {
		t.Fatal(err)
	}
	if cp.Pids != pids || cp.Memory != mem || cp.V2 || cp.Unit != "nginx.service" {
		t.Fatalf("paths %+v", cp)
	}
	c := cp.Read()
	if c.PidsMax != 20 || c.PidsCurrent != 20 || c.PidsRefused != 7 || c.MemoryLimit != 48<<20 || c.MemoryFailcnt != 75 || c.OOMKills != 1 {
		t.Errorf("read %+v", c)
	}
	if d := c.Since(Cgroup{PidsRefused: 2, MemoryFailcnt: 70, OOMKills: 0}); d.PidsRefused != 5 || d.MemoryFailcnt != 5 || d.OOMKills != 1 || d.PidsMax != 20 {
		t.Errorf("since %+v", d)
	}
	if d := c.Since(Cgroup{PidsRefused: -1}); d.PidsRefused != -1 {
		t.Errorf("an unknown baseline gave %d", d.PidsRefused)
	}
}

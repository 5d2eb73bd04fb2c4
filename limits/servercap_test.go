package limits

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A fake /proc/PID: comm, cmdline, and cwd and root as links to
// directories holding the config files the command line names.
func fakeServer(t *testing.T, comm string, argv []string, files map[string]string) string {
	t.Helper()
	proc := t.TempDir()
	dir := filepath.Join(proc, "42")
	fs := filepath.Join(proc, "rootfs")
	for _, d := range []string{dir, filepath.Join(fs, "work")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p, s string) {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(dir, "comm"), comm+"\n")
	write(filepath.Join(dir, "cmdline"), strings.Join(argv, "\x00")+"\x00")
	for p, s := range files {
		write(filepath.Join(fs, p), s)
	}
	if err := os.MkdirAll(filepath.Join(fs, "dev"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/zero", filepath.Join(fs, "dev", "zero")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(fs, filepath.Join(dir, "root")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(fs, "work"), filepath.Join(dir, "cwd")); err != nil {
		t.Fatal(err)
	}
	return proc
}

func TestReadServerCap(t *testing.T) {
	pgConf := map[string]string{
		"/data/postgresql.conf":      "max_connections = 200   # (change requires restart)\n#superuser_reserved_connections = 7\n",
		"/data/postgresql.auto.conf": "superuser_reserved_connections = '5'\n",
	}
	for _, tc := range []struct {
		name   string
		comm   string
		argv   []string
		files  map[string]string
		soft   uint64
		known  bool
		cap    int64
		source string
	}{
		{"redis title, default", "redis-server", []string{"redis-server 127.0.0.1:6379"}, nil, 20000, true, 10000, "the default 10000"},
		{"redis title, low limit", "redis-server", []string{"redis-server *:6379"}, nil, 96, true, 64, "RLIMIT_NOFILE 96 − the 32"},
		{"redis flag", "redis-server", []string{"redis-server", "--maxclients", "30"}, nil, 1024, true, 30, "--maxclients"},
		{"redis flag above the limit", "redis-server", []string{"redis-server", "--maxclients", "5000"}, nil, 1024, true, 992, "RLIMIT_NOFILE 1024"},
		{"redis config file (absolute)", "redis-server", []string{"redis-server", "/etc/redis/redis.conf"},
			map[string]string{"/etc/redis/redis.conf": "# maxclients 10\nmaxclients 250\nport 6379\n"}, 20000, true, 250, "/etc/redis/redis.conf"},
		{"redis config file (relative to its cwd)", "redis-server", []string{"redis-server", "r.conf"},
			map[string]string{"/work/r.conf": "maxclients 77\n"}, 20000, true, 77, "r.conf"},
		{"redis config without maxclients", "redis-server", []string{"redis-server", "r.conf"},
			map[string]string{"/work/r.conf": "port 1\n"}, 20000, true, 10000, "sets no maxclients"},
		{"postgres defaults", "postgres", []string{"/usr/lib/postgresql/15/bin/postgres", "-D", "/nodata"}, nil, 1024, true, 100, "the defaults; 3 of them kept for superusers: an ordinary role is refused from 97 on"},
		{"postgres files: auto.conf after postgresql.conf", "postgres", []string{"postgres", "-D", "/data"}, pgConf, 1024, true, 200, "postgresql.auto.conf; 5 of them kept for superusers"},
		{"postgres -c wins", "postgres", []string{"postgres", "-D", "/data", "-c", "max_connections=5", "--superuser-reserved-connections=0"}, pgConf, 1024, true, 5, "its command line; 0 of them"},
		{"postgres config_file", "postgres", []string{"postgres", "-D", "/nodata", "-c", "config_file=/etc/pg.conf"},
			map[string]string{"/etc/pg.conf": "max_connections=40\n"}, 1024, true, 40, "/etc/pg.conf; 3 of them"},
		{"postgres unreadable number", "postgres", []string{"postgres", "-c", "max_connections=lots"}, nil, 1024, false, 0, ""},
		// A path from another process's command line: never read whole.
		{"redis config that is a device", "redis-server", []string{"redis-server", "/dev/zero"}, nil, 20000, true, 10000, "sets no maxclients"},
		{"another server", "nginx", []string{"nginx: master process"}, nil, 1024, false, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, ok := ReadServerCap(fakeServer(t, tc.comm, tc.argv, tc.files), 42, tc.soft)
			if ok != tc.known || c.Cap != tc.cap || !strings.Contains(c.Source, tc.source) {
				t.Errorf("got %+v, %v: want cap %d from %q, known %v", c, ok, tc.cap, tc.source, tc.known)
			}
		})
	}
}

package limits

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ServerCap is a server's own cap on its clients, which it enforces below
// its descriptor limit by accepting and then refusing (run's
// target-closed): Redis maxclients, PostgreSQL max_connections. It is read
// from the server's command line and configuration files, never by asking
// the server, so a value changed at run time (CONFIG SET, ALTER SYSTEM
// without a restart) is not seen: Source says where the figure came from.
type ServerCap struct {
	Server  string `json:"server"`  // redis-server, postgres
	Setting string `json:"setting"` // maxclients, max_connections
	Cap     int64  `json:"cap"`     // clients it takes before it refuses
	Source  string `json:"source"`  // where Cap was read, and how it was derived
	// Clients is what counts against it now: the established connections
	// on the listener's port (a PostgreSQL backend holds its own), or the
	// process's accepted ones when no listener is known. Set by inspect.
	Clients int64 `json:"clients"`
}

// redisReserved is the descriptors Redis keeps for itself: it lowers
// maxclients to RLIMIT_NOFILE − 32 when it cannot raise the limit.
const redisReserved = 32

// ReadServerCap reads the cap of a server connlimit knows by its name;
// false for any other process. soft is its RLIMIT_NOFILE soft limit.
func ReadServerCap(procRoot string, pid int, soft uint64) (ServerCap, bool) {
	dir := filepath.Join(procRoot, strconv.Itoa(pid))
	name, _ := os.ReadFile(filepath.Join(dir, "comm"))
	raw, _ := os.ReadFile(filepath.Join(dir, "cmdline"))
	argv := strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
	switch strings.TrimSpace(string(name)) {
	case "redis-server":
		return redisCap(argv, dir, soft), true
	case "postgres", "postmaster":
		return postgresCap(argv, dir)
	}
	return ServerCap{}, false
}

// redisCap is min(maxclients, soft − 32). Redis rewrites its command line
// into a title ("redis-server 127.0.0.1:6379") unless set-proc-title is no:
// then neither its flags nor its config file are visible, and the default
// 10000 is assumed.
func redisCap(argv []string, dir string, soft uint64) ServerCap {
	c := ServerCap{Server: "redis-server", Setting: "maxclients", Cap: 10000, Source: "the default 10000 (its command line is a title: a maxclients set in its config is not visible)"}
	if v, ok := flagValue(argv, "--maxclients"); ok {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			c.Cap, c.Source = n, "--maxclients on its command line"
		}
	} else if len(argv) > 1 && !strings.HasPrefix(argv[1], "--") {
		c.Source = "the default 10000 (" + argv[1] + " sets no maxclients)"
		if v, ok := configValue(resolve(dir, argv[1]), "maxclients", ' '); ok {
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				c.Cap, c.Source = n, argv[1]
			}
		}
	}
	if soft > redisReserved && soft != ^uint64(0) && int64(soft-redisReserved) < c.Cap {
		c.Cap = int64(soft - redisReserved)
		c.Source = "RLIMIT_NOFILE " + strconv.FormatUint(soft, 10) + " − the 32 Redis keeps for itself: it lowers maxclients to fit"
	}
	return c
}

// postgresCap is max_connections: where every client is refused, before it
// logs in, with 53300 "sorry, too many clients already". The slots kept
// for superusers (superuser_reserved_connections, 3 by default, and since
// 16 reserved_connections) refuse an ordinary role sooner, but only after
// it has authenticated: the source says how many. The value is the last
// one set: postgresql.conf, then postgresql.auto.conf, then -c or
// --name=value on the command line.
func postgresCap(argv []string, dir string) (ServerCap, bool) {
	vals := map[string]string{"max_connections": "100", "superuser_reserved_connections": "3", "reserved_connections": "0"}
	src := "the defaults"
	data, _ := flagValue(argv, "-D")
	cmdline := map[string]string{}
	for i, a := range argv {
		var kv string
		switch {
		case a == "-c" && i+1 < len(argv):
			kv = argv[i+1]
		case strings.HasPrefix(a, "--") && strings.Contains(a, "="):
			kv = strings.TrimPrefix(a, "--")
		}
		if k, v, ok := strings.Cut(kv, "="); ok {
			cmdline[strings.ReplaceAll(k, "-", "_")] = v
		}
	}
	conf := cmdline["config_file"]
	if conf == "" && data != "" {
		conf = filepath.Join(data, "postgresql.conf")
	}
	files := []string{conf}
	if data != "" {
		files = append(files, filepath.Join(data, "postgresql.auto.conf"))
	}
	for _, f := range files {
		if f == "" {
			continue
		}
		for k := range vals {
			if v, ok := configValue(resolve(dir, f), k, '='); ok {
				vals[k], src = strings.Trim(v, "'"), f
			}
		}
	}
	for k := range vals {
		if v, ok := cmdline[k]; ok {
			vals[k], src = v, "its command line"
		}
	}
	n := make(map[string]int64, len(vals))
	for k, v := range vals {
		x, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return ServerCap{}, false
		}
		n[k] = x
	}
	reserved := n["superuser_reserved_connections"] + n["reserved_connections"]
	return ServerCap{Server: "postgres", Setting: "max_connections", Cap: n["max_connections"],
		Source: src + "; " + strconv.FormatInt(reserved, 10) + " of them kept for superusers: an ordinary role is refused from " +
			strconv.FormatInt(max(n["max_connections"]-reserved, 0), 10) + " on, once it has logged in"}, true
}

// flagValue is the argument after name, or name=value's value.
func flagValue(argv []string, name string) (string, bool) {
	for i, a := range argv {
		if a == name && i+1 < len(argv) {
			return argv[i+1], true
		}
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v, true
		}
	}
	return "", false
}

// configValue is the last "key value" (sep ' ') or "key = value" (sep
// '=') line of a config file, with a trailing # comment cut.
func configValue(path, key string, sep byte) (string, bool) {
	b, err := readConfig(path)
	if err != nil {
		return "", false
	}
	var val string
	found := false
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		line = strings.TrimSpace(line)
		k, v, ok := strings.Cut(line, string(sep))
		if !ok && sep == '=' {
			k, v, ok = strings.Cut(line, " ")
		}
		if ok && strings.EqualFold(strings.TrimSpace(k), key) {
			val, found = strings.TrimSpace(v), true
		}
	}
	return val, found
}

// resolve is a path the process gave, as that process sees it: under its
// root (another mount namespace, a container) or its working directory.
func resolve(dir, p string) string {
	if filepath.IsAbs(p) {
		return filepath.Join(dir, "root", p)
	}
	return filepath.Join(dir, "cwd", p)
}

// maxConfig bounds a config file read: the path comes from another
// process's command line, which may name /dev/zero or a FIFO.
const maxConfig = 4 << 20

// readConfig reads a regular file of at most maxConfig bytes.
func readConfig(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxConfig+1))
	if err == nil && len(b) > maxConfig {
		err = fmt.Errorf("%s: more than %d bytes", path, maxConfig)
	}
	return b, err
}

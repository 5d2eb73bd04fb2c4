package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/csv"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Real servers this project did not write, installed from Debian packages by
// .ci/run. Outside CI a missing one skips its test with the reason.
func needServer(t *testing.T, bin, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(bin)
	if err == nil {
		return path
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is missing in CI: .ci/run installs the Debian package %s", bin, pkg)
	}
	t.Skipf("%s not installed (apt-get install %s); .ci/run installs it", bin, pkg)
	return ""
}

// freePort finds a loopback port nobody listens on (a listener is opened and
// closed: another process could take it in between, which the server start
// would report).
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startServer runs a server in the foreground as our child, waits until it
// listens on port, and stops it (SIGTERM, then SIGKILL) when the test ends.
func startServer(t *testing.T, port int, name string, args ...string) *exec.Cmd {
	t.Helper()
	return startServerCmd(t, port, exec.Command(name, args...), nil)
}

// startServerCmd is startServer for a command already built, run as cred
// when not nil (servers that refuse root).
func startServerCmd(t *testing.T, port int, cmd *exec.Cmd, cred *syscall.Credential) *exec.Cmd {
	t.Helper()
	name := filepath.Base(cmd.Path)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Credential: cred}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	addr := "127.0.0.1:" + strconv.Itoa(port)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		select {
		case err := <-done:
			t.Fatalf("%s exited before listening: %v\n%s", name, err, out.String())
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return cmd
		}
	}
	t.Fatalf("%s did not listen on %s\n%s", name, addr, out.String())
	return nil
}

// nginx stopped by its worker's RLIMIT_NOFILE (worker_rlimit_nofile 64):
// target-fd-limit, with the worker found by the listener's socket inode.
// nginxConf writes an nginx configuration for one worker on port with the
// given main-context and events lines, its files in dir.
func nginxConf(t *testing.T, dir string, port int, main, events string) string {
	return nginxConfServers(t, dir, main, events, fmt.Sprintf(`server { listen 127.0.0.1:%d; location / { return 200 "ok\n"; } }`, port))
}

// nginxConfServers is nginxConf with the http context's server blocks given.
func nginxConfServers(t *testing.T, dir, main, events, servers string) string {
	t.Helper()
	conf := filepath.Join(dir, "nginx.conf")
	var temps strings.Builder
	for _, k := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		fmt.Fprintf(&temps, "  %s_temp_path %s;\n", k, filepath.Join(dir, k))
	}
	err := os.WriteFile(conf, fmt.Appendf(nil, `daemon off;
master_process on;
worker_processes 1;
%[4]s
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { %[5]s }
http {
  access_log off;
  keepalive_timeout 60s;
%[3]s  %[2]s
}
`, dir, servers, temps.String(), main, events), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	return conf
}

// nginx at worker_connections, with descriptors to spare, closes idle
// keep-alive connections to reuse their slots: target-closed at the
// connections it held at once, not "at 0" (its first failure is late, or
// never: every connection was answered before it was closed).
func TestNginxWorkerConnections(t *testing.T) {
	noLeftovers(t)
	bin := needServer(t, "nginx", "nginx-light")
	dir := t.TempDir()
	port := freePort(t)
	conf := nginxConf(t, dir, port, "", "worker_connections 64;")
	startServer(t, port, bin, "-p", dir, "-c", conf)
	s := runJSON(t, "--target", "127.0.0.1:"+strconv.Itoa(port), "--probe", "http", "--connections", "200", "--rate", "400", "--hold", "1s")
	if s.FirstLimit != "target-closed" || s.FirstLimitAt < 40 || s.FirstLimitAt > 64 || s.Outcomes["served"] != int(s.FirstLimitAt) || s.Outcomes["closed"] != 200-int(s.FirstLimitAt) {
		t.Fatalf("first limit %s at %d, outcomes %v: want target-closed at the ~55 it held", s.FirstLimit, s.FirstLimitAt, s.Outcomes)
	}
	if !strings.Contains(s.Setting, "worker_connections") || !strings.Contains(s.Value, "held at once") {
		t.Errorf("setting %q = %q", s.Setting, s.Value)
	}
}

func TestNginxFDLimit(t *testing.T) {
	noLeftovers(t)
	bin := needServer(t, "nginx", "nginx-light")
	dir := t.TempDir()
	port := freePort(t)
	conf := nginxConf(t, dir, port, "worker_rlimit_nofile 64;", "worker_connections 1024;")
	startServer(t, port, bin, "-p", dir, "-c", conf, "-e", filepath.Join(dir, "error.log"))

	csvPath := filepath.Join(dir, "c.csv")
	s := runJSON(t, "--target", "127.0.0.1:"+strconv.Itoa(port), "--probe", "http", "--connections", "100",
		"--greeting-timeout", "500ms", "--hold", "300ms", "--csv", csvPath)
	if s.FirstLimit != "target-fd-limit" {
		t.Fatalf("first limit %s, want target-fd-limit; outcomes %v, processes %+v", s.FirstLimit, s.Outcomes, s.Processes)
	}
	served, queued := s.Outcomes["served"], s.Outcomes["queued"]
	if served < 30 || served >= 64 || served+queued != 100 || s.FirstLimitAt != int64(served) {
		t.Errorf("outcomes %v at %d: want fewer than 64 served (the worker's limit), the rest queued", s.Outcomes, s.FirstLimitAt)
	}
	var worker *processJSON
	for i, p := range s.Processes {
		if !strings.HasPrefix(p.FoundBy, "socket inode ") || p.Name != "nginx" {
			t.Errorf("process %+v: want nginx found by socket inode", p)
		}
		if p.AtLimit {
			worker = &s.Processes[i]
		}
	}
	if len(s.Processes) != 2 || worker == nil || worker.NoFileSoft != 64 || worker.SlotsUsedMax != 64 || !strings.Contains(worker.Cmdline, "worker") {
		t.Fatalf("processes %+v: want the master and a worker at 64 of 64", s.Processes)
	}
	if !strings.Contains(s.Value, "64 (nginx: worker process, pid "+strconv.Itoa(worker.PID)) {
		t.Errorf("value %q", s.Value)
	}
	rows := readCSV(t, csvPath)
	if rows[1][6] != "served" || rows[1][11] != "200" {
		t.Errorf("first row %v: want served with HTTP status 200", rows[1])
	}
}

// Redis stopped by its own connection cap (maxclients 10): it accepts, says
// "-ERR max number of clients reached" and closes, with descriptors to spare.
func TestRedisConnectionCap(t *testing.T) {
	noLeftovers(t)
	bin := needServer(t, "redis-server", "redis-server")
	dir := t.TempDir()
	port := freePort(t)
	startServer(t, port, bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--maxclients", "10",
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--protected-mode", "no", "--dir", dir)

	s := runJSON(t, "--target", "localhost:"+strconv.Itoa(port), "--connections", "30", "--hold", "300ms")
	if s.FirstLimit != "target-closed" || s.FirstLimitAt != 10 || s.Outcomes["served"] != 10 || s.Outcomes["closed"] != 20 {
		t.Fatalf("first limit %s at %d, outcomes %v: want target-closed at 10", s.FirstLimit, s.FirstLimitAt, s.Outcomes)
	}
	if len(s.Reasons) == 0 || s.Reasons[0].Reason != "-ERR max number of clients reached" || s.Reasons[0].Count != 20 {
		t.Errorf("reasons %+v", s.Reasons)
	}
	if len(s.Processes) != 1 || s.Processes[0].Name != "redis-server" || s.Processes[0].AtLimit || !s.Processes[0].Readable {
		t.Errorf("processes %+v: want redis-server, readable, not at its fd limit", s.Processes)
	}
	if !strings.Contains(s.Value, "max number of clients") {
		t.Errorf("value %q", s.Value)
	}
	// The redis probe asks (PING) and reads the refusal in Redis's words.
	s = runJSON(t, "--target", "localhost:"+strconv.Itoa(port), "--probe", "redis", "--connections", "30", "--hold", "300ms")
	if s.FirstLimit != "target-closed" || s.FirstLimitAt != 10 || s.Outcomes["served"] != 10 || s.Outcomes["closed"] != 20 {
		t.Fatalf("--probe redis: first limit %s at %d, outcomes %v: want target-closed at 10", s.FirstLimit, s.FirstLimitAt, s.Outcomes)
	}
	if len(s.Reasons) == 0 || s.Reasons[0].Reason != "ERR max number of clients reached" || s.Reasons[0].Count != 20 {
		t.Errorf("--probe redis: reasons %+v", s.Reasons)
	}
}

func readCSV(t *testing.T, path string) [][]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// Each gate passes and fails as documented: exit 1 and one line per failed gate.
func TestGates(t *testing.T) {
	noLeftovers(t)
	// 100 connections to a target with 32 descriptors: about 20 served, target-fd-limit.
	common := []string{"run", "--connections", "100", "--target-nofile", "32", "--greeting-timeout", "300ms", "--hold", "0s", "-q"}
	tests := []struct {
		gates  []string
		code   int
		failed []string // gates named in stderr
	}{
		{[]string{"--require-served", "5", "--expect-limit", "target-fd-limit", "--max-connect-p99", "10s"}, 0, nil},
		{[]string{"--require-served", "100"}, 1, []string{"--require-served"}},
		{[]string{"--expect-limit", "none"}, 1, []string{"--expect-limit"}},
		{[]string{"--max-connect-p99", "1ns"}, 1, []string{"--max-connect-p99"}},
		{[]string{"--require-served", "100", "--expect-limit", "refused"}, 1, []string{"--require-served", "--expect-limit"}},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.gates, " "), func(t *testing.T) {
			js := filepath.Join(t.TempDir(), "s.json")
			_, stderr, code := cli(t, append(append(common, "--json", js), tc.gates...)...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stderr %q", code, tc.code, stderr)
			}
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			if len(tc.failed) == 0 && stderr != "" || len(tc.failed) > 0 && len(lines) != len(tc.failed) {
				t.Fatalf("stderr %q: want one line per failed gate %v", stderr, tc.failed)
			}
			for i, g := range tc.failed {
				if !strings.Contains(lines[i], "gate "+g+" failed: want ") || !strings.Contains(lines[i], ", got ") {
					t.Errorf("line %q: want the gate %s, its bound and the figure", lines[i], g)
				}
			}
			s := readSummary(t, js)
			if len(s.Gates) != len(tc.gates)/2 {
				t.Errorf("JSON gates %+v", s.Gates)
			}
		})
	}
}

func TestExternalTargetFaults(t *testing.T) {
	noLeftovers(t)
	dir := t.TempDir()
	port := strconv.Itoa(freePort(t))
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--target", "127.0.0.1:" + port}, 3, "nothing listens there"},
		{[]string{"--target", "127.0.0.1:" + port, "--target-nofile", "64"}, 2, "--target-nofile describes the built-in target"},
		{[]string{"--target", "192.0.2.1:80"}, 2, "not a loopback address"},
		{[]string{"--target", "127.0.0.1"}, 2, "--target"},
		{[]string{"--probe", "http"}, 2, "--probe http: needs --target"},
		{[]string{"--probe", "ftp"}, 2, "--probe"},
		{[]string{"--expect-limit", "too-many"}, 2, "--expect-limit"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			_, stderr, code := cli(t, append([]string{"run", "-q", "--json", filepath.Join(dir, "s.json")}, tc.args...)...)
			if code != tc.code || !strings.Contains(stderr, tc.want) || strings.Count(stderr, "\n") != 1 {
				t.Errorf("exit %d, stderr %q: want %d and one line with %q", code, stderr, tc.code, tc.want)
			}
			if _, err := os.Stat(filepath.Join(dir, "s.json")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("s.json written: %v", err)
			}
		})
	}
}

// serverDir is a directory a server running as uid:gid may use, removed
// when the test ends (t.TempDir's parent admits only root).
func serverDir(t *testing.T, uid, gid int) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "connlimit-server-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	return dir
}

// postgresCluster finds PostgreSQL and initdb's a cluster in a directory of
// the postgres user's own (initdb refuses root), removed when the test ends.
func postgresCluster(t *testing.T) (bin string, cred *syscall.Credential, dir, data string) {
	t.Helper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
	if len(bins) == 0 {
		needServer(t, "postgres", "postgresql")
	}
	bin = bins[len(bins)-1]
	u, err := user.Lookup("postgres")
	if err != nil || os.Geteuid() != 0 {
		t.Skipf("needs root and the postgres user (initdb refuses root): %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	dir = serverDir(t, uid, gid)
	data = filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(filepath.Dir(bin), "initdb"), "-D", data, "-U", "postgres", "--auth-host=scram-sha-256", "--auth-local=trust", "--no-sync")
	initdb.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Credential: cred}
	initdb.Env = append(os.Environ(), "LANG=C", "LC_ALL=C")
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	return bin, cred, dir, data
}

// startPostgres runs a fresh cluster's postmaster on a free loopback port
// with these -c settings, and returns its address.
func startPostgres(t *testing.T, settings ...string) string {
	t.Helper()
	bin, cred, dir, data := postgresCluster(t)
	port := freePort(t)
	args := []string{"-D", data, "-p", strconv.Itoa(port), "-k", dir, "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"}
	for _, kv := range settings {
		args = append(args, "-c", kv)
	}
	startServerCmd(t, port, exec.Command(bin, args...), cred)
	return "127.0.0.1:" + strconv.Itoa(port)
}

// PostgreSQL past max_connections says nothing until the client's
// StartupMessage: --probe connect calls every connection served, --probe
// postgres reads the refusal (53300) and names the cap.
func TestPostgresMaxConnections(t *testing.T) {
	noLeftovers(t)
	target := startPostgres(t, "max_connections=5", "superuser_reserved_connections=0")
	// Connecting tells nothing: the server accepts and waits to be asked.
	if s := runJSON(t, "--target", target, "--probe", "connect", "--connections", "20", "--rate", "100", "--hold", "500ms"); s.FirstLimit != "none" || s.Outcomes["served"] != 20 {
		t.Errorf("--probe connect: first limit %s, outcomes %v: want none, 20 served (what the docs say it cannot see)", s.FirstLimit, s.Outcomes)
	}
	s := runJSON(t, "--target", target, "--probe", "postgres", "--connections", "20", "--rate", "100", "--hold", "500ms")
	if s.FirstLimit != "target-closed" || s.FirstLimitAt != 5 || s.Outcomes["served"] != 5 || s.Outcomes["closed"] != 15 {
		t.Fatalf("first limit %s at %d, outcomes %v: want target-closed at 5", s.FirstLimit, s.FirstLimitAt, s.Outcomes)
	}
	if len(s.Reasons) == 0 || s.Reasons[0].Reason != "53300 sorry, too many clients already" || s.Reasons[0].Count != 15 {
		t.Errorf("reasons %+v", s.Reasons)
	}
}

// MariaDB speaks first: its handshake is served, and past max_connections
// (+1 for a SUPER user) its ERR packet is decoded into the reason (1040 Too
// many connections), not shown as raw bytes.
func TestMariaDBMaxConnections(t *testing.T) {
	noLeftovers(t)
	bin := needServer(t, "mariadbd", "mariadb-server")
	_, port := startMariaDB(t, bin)

	s := runJSON(t, "--target", "127.0.0.1:"+strconv.Itoa(port), "--probe", "mysql", "--connections", "30", "--rate", "100", "--hold", "500ms")
	// 10 is MariaDB's least max_connections, and it keeps one connection
	// beyond it for a SUPER user.
	if s.FirstLimit != "target-closed" || s.FirstLimitAt != 11 || s.Outcomes["served"] != 11 || s.Outcomes["closed"] != 19 {
		t.Fatalf("first limit %s at %d, outcomes %v: want target-closed at 11", s.FirstLimit, s.FirstLimitAt, s.Outcomes)
	}
	if len(s.Reasons) == 0 || s.Reasons[0].Reason != "1040 Too many connections" {
		t.Errorf("reasons %+v", s.Reasons)
	}
}

// startMariaDB runs mariadbd as root with max_connections 10 (its least)
// on a free loopback port, with its data in a directory of the test's; it
// returns the directory and the port. (As another user it would lose its
// Pdeathsig at setuid, and could outlive a test killed by its timeout.)
func startMariaDB(t *testing.T, bin string) (string, int) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to run mariadbd as root with --user=root")
	}
	dir := serverDir(t, 0, 0)
	data := filepath.Join(dir, "data")
	install := exec.Command("mariadb-install-db", "--no-defaults", "--datadir="+data, "--auth-root-authentication-method=normal", "--skip-test-db", "--user=root")
	install.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("mariadb-install-db: %v\n%s", err, out)
	}
	port := freePort(t)
	startServerCmd(t, port, exec.Command(bin, "--no-defaults", "--datadir="+data, "--port="+strconv.Itoa(port), "--bind-address=127.0.0.1",
		"--socket="+filepath.Join(dir, "sock"), "--pid-file="+filepath.Join(dir, "pid"), "--max-connections=10", "--user=root",
		"--skip-log-bin", "--innodb-buffer-pool-size=16M"), nil)
	return dir, port
}

// mariadbPID reads the pid file startMariaDB asked for.
// It waits for the number: mariadbd may listen before it has written the
// file it created (CI once read it empty).
func mariadbPID(t *testing.T, dir string) int {
	t.Helper()
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		var b []byte
		if b, err = os.ReadFile(filepath.Join(dir, "pid")); err == nil {
			var pid int
			if pid, err = strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
				return pid
			}
		}
	}
	t.Fatalf("mariadbd's pid file: %v", err)
	return 0
}

// HAProxy in TCP mode with 256 descriptors in front of a roomy backend: a
// forwarder holds two descriptors a connection, and sizes its maxconn from
// its limit. The verdict is forwarder-fd-limit with both halves counted,
// not the accept queue its full maxconn leaves behind.
func TestHAProxyForwarderFDLimit(t *testing.T) {
	noLeftovers(t)
	bin := needServer(t, "haproxy", "haproxy")
	if _, err := exec.LookPath("prlimit"); err != nil {
		t.Skip("no prlimit")
	}
	// The backend holds its connections in a process of its own: not in the
	// test's, whose descriptors the in-process runs share.
	backend := "127.0.0.1:" + strconv.Itoa(freePort(t))
	startHog(t, backend, 0, nil)
	port := freePort(t)
	cfg := filepath.Join(t.TempDir(), "haproxy.cfg")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend f
  bind 127.0.0.1:%d
  default_backend b
backend b
  server s1 %s
`, port, backend)), 0o644)
	startServer(t, port, "prlimit", "--nofile=256:256", bin, "-f", cfg, "-db")

	// run, not runJSON: the backend is this binary too, and outlives the run.
	js := filepath.Join(t.TempDir(), "s.json")
	var stdout, stderr bytes.Buffer
	if err := run(t.Context(), []string{"run", "-q", "--json", js, "--target", "127.0.0.1:" + strconv.Itoa(port), "--connections", "300", "--rate", "500", "--hold", "1s"}, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	s := readSummary(t, js)
	if s.FirstLimit != "forwarder-fd-limit" || s.FirstLimitAt < 100 || s.FirstLimitAt > 128 {
		t.Fatalf("first limit %s at %d, outcomes %v: want forwarder-fd-limit at about 120 (256 descriptors, two a connection)", s.FirstLimit, s.FirstLimitAt, s.Outcomes)
	}
	if !strings.Contains(s.Value, fmt.Sprintf("%d accepted + %d dialed to %s", s.FirstLimitAt, s.FirstLimitAt, backend)) {
		t.Errorf("value %q: want both halves and the backend", s.Value)
	}
	if len(s.Processes) != 1 || s.Processes[0].Name != "haproxy" {
		t.Errorf("processes %+v", s.Processes)
	}
}

// testCert writes a self-signed certificate for name and its key into dir.
func testCert(t *testing.T, dir, name string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// --probe tls against nginx terminating TLS: served when the handshake
// completes; a server name nginx rejects (ssl_reject_handshake) is refused
// by its alert, in words; at worker_rlimit_nofile the limit is the worker's
// descriptors, the handshakes beyond it left waiting in the queue.
func TestNginxTLS(t *testing.T) {
	noLeftovers(t)
	bin := needServer(t, "nginx", "nginx-light")
	tests := []struct {
		name, serverName, main string
		want                   string
		check                  func(t *testing.T, s summaryJSON)
	}{
		{"handshakes complete", "example.test", "", "none", func(t *testing.T, s summaryJSON) {
			if s.Outcomes["served"] != 40 {
				t.Errorf("outcomes %v: want 40 served", s.Outcomes)
			}
		}},
		{"unknown name refused by alert", "other.test", "", "target-closed", func(t *testing.T, s summaryJSON) {
			if s.Outcomes["closed"] != 40 || len(s.Reasons) != 1 || s.Reasons[0].Reason != "TLS alert: unrecognized name" {
				t.Errorf("outcomes %v, reasons %+v: want 40 closed by the unrecognized-name alert", s.Outcomes, s.Reasons)
			}
		}},
		{"worker out of descriptors", "example.test", "worker_rlimit_nofile 32;", "target-fd-limit", func(t *testing.T, s summaryJSON) {
			if s.FirstLimitAt < 15 || s.FirstLimitAt >= 32 || s.Outcomes["served"] != int(s.FirstLimitAt) || s.Outcomes["queued"] != 40-int(s.FirstLimitAt) {
				t.Errorf("outcomes %v at %d: want fewer than 32 served, the rest queued", s.Outcomes, s.FirstLimitAt)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			port := freePort(t)
			cert, key := testCert(t, dir, "example.test")
			conf := nginxConfServers(t, dir, tc.main, "worker_connections 1024;", fmt.Sprintf(`
  ssl_certificate %[2]s; ssl_certificate_key %[3]s;
  server { listen 127.0.0.1:%[1]d ssl default_server; ssl_reject_handshake on; }
  server { listen 127.0.0.1:%[1]d ssl; server_name example.test; location / { return 200 "ok\n"; } }`, port, cert, key))
			startServer(t, port, bin, "-p", dir, "-c", conf, "-e", filepath.Join(dir, "error.log"))
			s := runJSON(t, "--target", "127.0.0.1:"+strconv.Itoa(port), "--probe", "tls", "--tls-server-name", tc.serverName,
				"--connections", "40", "--greeting-timeout", "500ms", "--hold", "300ms")
			if s.FirstLimit != tc.want {
				t.Fatalf("first limit %s at %d, outcomes %v, reasons %+v: want %s", s.FirstLimit, s.FirstLimitAt, s.Outcomes, s.Reasons, tc.want)
			}
			tc.check(t, s)
		})
	}
}

// PostgreSQL forks a backend per connection: when the fork fails, the
// postmaster answers "could not fork new process for connection" and
// closes. With descriptors and max_connections to spare that is
// target-task-limit, named by the limit that refused the fork:
//   - kernel.pid_max of the server's PID namespace (per namespace since
//     Linux 6.14), which the run reads from inside it before the ramp; the
//     run itself stays in a namespace with PIDs to spare;
//   - the postgres user's RLIMIT_NPROC (prlimit), every task of that uid
//     counted at the end of the hold.
//
// The server runs in a PID namespace of its own either way, so that it
// dies with the test although it runs as another user.
func TestPostgresTaskLimits(t *testing.T) {
	noLeftovers(t)
	for _, tc := range []struct {
		name, setup, setting, value string
		served                      [2]int // the backends that fit, at least and at most
	}{
		{"kernel.pid_max", "echo 400 > /proc/sys/kernel/pid_max &&", "kernel.pid_max", "400: ", [2]int{300, 400}},
		{"RLIMIT_NPROC", "prlimit --nproc=60:60", "the target user's RLIMIT_NPROC", "60 (", [2]int{40, 60}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "kernel.pid_max" {
				if out, err := exec.Command("unshare", "-p", "-f", "--mount-proc", "sh", "-c", "echo 400 > /proc/sys/kernel/pid_max").CombinedOutput(); err != nil {
					t.Skipf("kernel.pid_max cannot be set in a PID namespace of our own (Linux 6.14 and later): %v %s", err, out)
				}
			}
			bin, cred, dir, data := postgresCluster(t)
			port := freePort(t)
			// The namespace's init is a root shell that waits. unshare
			// ignores SIGTERM, so the cleanup below kills it; --kill-child
			// then kills the shell, and the kernel every process of the
			// namespace with it. (The postmaster as init would lose that
			// signal when setpriv changes its user.)
			srv := startServer(t, port, "unshare", "-p", "-f", "--kill-child", "--mount-proc", "sh", "-c", fmt.Sprintf(
				`%s setpriv --reuid=%d --regid=%d --clear-groups -- %s -D %s -p %d -k %s `+
					`-c listen_addresses=127.0.0.1 -c max_connections=600 -c superuser_reserved_connections=0 -c fsync=off `+
					`-c max_wal_senders=0 -c max_worker_processes=0 -c autovacuum=off >%s/pg.log 2>&1 & wait`, tc.setup, cred.Uid, cred.Gid, bin, data, port, dir, dir))
			t.Cleanup(func() { srv.Process.Kill() }) // before startServer's own, which then finds it gone
			// The postmaster listens before its start-up is over: wait until
			// it says it is ready, or show why it is not.
			logPath := filepath.Join(dir, "pg.log")
			for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
				if b, _ := os.ReadFile(logPath); bytes.Contains(b, []byte("ready to accept connections")) {
					break
				} else if time.Now().After(deadline) {
					t.Fatalf("postgres not ready in 15 s:\n%s", b)
				}
			}

			s := runJSON(t, "--target", "127.0.0.1:"+strconv.Itoa(port), "--probe", "postgres", "--connections", "500", "--rate", "1000", "--hold", "500ms")
			if s.FirstLimit != "target-task-limit" || !strings.HasPrefix(s.Setting, tc.setting) || !strings.HasPrefix(s.Value, tc.value) {
				log, _ := os.ReadFile(filepath.Join(dir, "pg.log"))
				t.Logf("postgres:\n%s", log)
				t.Fatalf("first limit %s at %d (%s = %s), outcomes %v, reasons %+v: want target-task-limit, %s %s",
					s.FirstLimit, s.FirstLimitAt, s.Setting, s.Value, s.Outcomes, s.Reasons, tc.setting, tc.value)
			}
			t.Logf("target-task-limit at %d: %s = %s", s.FirstLimitAt, s.Setting, s.Value)
			if tc.name == "kernel.pid_max" && !strings.Contains(s.Value, "the target's pid:[") {
				t.Errorf("value %q: want the server's own PID namespace named", s.Value)
			}
			served := s.Outcomes["served"]
			if served < tc.served[0] || served > tc.served[1] || s.FirstLimitAt != int64(served) || s.Outcomes["closed"] != 500-served {
				t.Errorf("outcomes %v at %d: want %d to %d backends served, the rest closed", s.Outcomes, s.FirstLimitAt, tc.served[0], tc.served[1])
			}
			if len(s.Reasons) == 0 || !strings.HasPrefix(s.Reasons[0].Reason, "could not fork new process for connection") {
				t.Errorf("reasons %+v: want the postmaster's fork failure", s.Reasons)
			}
		})
	}
}

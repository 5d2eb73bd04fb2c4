package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// privateDev runs script with sh in a mount namespace of its own, with a
// tmpfs of fresh device nodes on /dev: a report that replaced /dev/null
// would replace that one, never the host's. $CL is connlimit, $D a
// directory of the test's, $D/tiny a 16 KiB file system.
func privateDev(t *testing.T, script string) (stdout, stderr string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for a mount namespace")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("no unshare")
	}
	dir := t.TempDir()
	prelude := `set -u
mount -t tmpfs -o mode=0755 dev /dev || exit 90
for n in null:3 zero:5 full:7 urandom:9; do mknod -m 666 /dev/${n%:*} c 1 ${n#*:}; done
ln -s /proc/self/fd /dev/fd; ln -s /proc/self/fd/1 /dev/stdout; ln -s /proc/self/fd/2 /dev/stderr
mkdir $D/tiny && mount -t tmpfs -o size=16k tiny $D/tiny || exit 91
`
	var out, errb bytes.Buffer
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", prelude+script)
	cmd.Env = append(os.Environ(), "CL="+testExe, "D="+dir)
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v; stdout %q stderr %q", err, out.String(), errb.String())
	}
	return out.String(), errb.String()
}

// The rule for a report path: what exists and is not a regular file (a
// device, /dev/stdout) is written in place; one output that cannot be
// written (a full device or file system) loses no other; the summary is on
// stdout whatever happens to the files.
func TestReportPaths(t *testing.T) {
	noLeftovers(t)
	const quick = "$CL run -q --probe connect --hold 0 --connections 400 "
	const after = `; echo "exit=$?"; stat -c '%n %F %a' /dev/null /dev/full; ls -A $D/tiny`
	for _, tc := range []struct {
		name, script string
		want         []string // in stdout
		wantErr      []string // in stderr
	}{
		{"devices are written in place",
			quick + "--csv /dev/null --json /dev/stdout --timeline /dev/fd/2" + after,
			[]string{"first limit:", `"schema_version": 1`, "exit=0", "/dev/null character special file 666"},
			[]string{"elapsed_s,"}},
		{"a full device loses no other output",
			quick + "--csv /dev/full --json $D/a.json --timeline $D/t.csv" + after + "; head -c 40 $D/a.json; echo; head -1 $D/t.csv",
			[]string{"first limit:", "exit=3", "/dev/full character special file 666", `"schema_version"`, "elapsed_s,"},
			[]string{"--csv /dev/full: not written", "(ENOSPC)"}},
		{"a full file system loses no other output and leaves no temporary file",
			quick + "--csv $D/tiny/c.csv --json $D/a.json" + after + "; head -c 40 $D/a.json",
			[]string{"first limit:", "exit=3", `"schema_version"`},
			[]string{"/tiny/c.csv: not written", "(ENOSPC)"}},
		{"a directory linked to another file system",
			"ln -s $D/tiny $D/link; " + quick + "--json $D/link/x.json" + after,
			[]string{"exit=0", "x.json"},
			nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut := privateDev(t, tc.script)
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("stdout lacks %q:\n%s\nstderr:\n%s", w, out, errOut)
				}
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut)
				}
			}
			if strings.Contains(out, ".tmp") {
				t.Errorf("a temporary file was left:\n%s", out)
			}
		})
	}
	noProcessLeft(t)
}

// Two report flags that name one file, however spelt, are a usage error:
// one report would silently replace the other.
func TestSameOutputTwice(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	os.WriteFile("a.json", nil, 0o644)
	os.Link("a.json", "hard.json")
	os.Symlink("a.json", "soft.json")
	os.Symlink(".", "here")
	for _, pair := range [][2]string{
		{"a.json", "./a.json"},
		{"a.json", filepath.Join(dir, "a.json")},
		{"a.json", "hard.json"},
		{"a.json", "soft.json"},
		{"new.csv", "here/new.csv"},
	} {
		_, errOut, code := cli(t, "run", "-q", "--connections", "5", "--json", pair[0], "--csv", pair[1])
		if code != exitUsage || !strings.Contains(errOut, "name the same file") || strings.Count(errOut, "\n") != 1 {
			t.Errorf("--json %s --csv %s: exit %d, stderr %q; want 2 and one line", pair[0], pair[1], code, errOut)
		}
	}
	if _, err := os.Stat("new.csv"); err == nil {
		t.Error("a usage error wrote a file")
	}
	if _, errOut, code := cli(t, "run", "-q", "--connections", "5", "--json", dir); code != exitUsage || !strings.Contains(errOut, "is a directory") {
		t.Errorf("--json DIR: exit %d, stderr %q", code, errOut)
	}
}

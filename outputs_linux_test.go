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

// A report never lands where the path's owner did not mean it to: not through
// another user's symlink in a sticky, world-writable directory (root's report
// would replace the file that user picked), not onto a block device, not over
// a file made read-only to its writer. Each is a one-line usage error, exit 2,
// and leaves the file as it was and no temporary file.
func TestReportPathsRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: another user's link, a device node, dropping to nobody")
	}
	sticky, private := t.TempDir(), t.TempDir()
	if err := os.Chmod(sticky, os.ModeSticky|0o777); err != nil {
		t.Fatal(err)
	}
	victim := filepath.Join(private, "victim")
	os.WriteFile(victim, []byte("precious"), 0o600)
	link := filepath.Join(sticky, "report.csv")
	os.Symlink(victim, link)
	if err := os.Lchown(link, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	disk := filepath.Join(private, "disk")
	if err := syscall.Mknod(disk, syscall.S_IFBLK|0o600, 7<<8|250); err != nil {
		t.Fatal(err)
	}
	cmd, nobodyDir := asNobody(t, "run", "-q", "--connections", "5", "--json", "PLACEHOLDER")
	readOnly := filepath.Join(nobodyDir, "kept.json")
	os.WriteFile(readOnly, []byte("kept"), 0o444)
	os.Chown(readOnly, 65534, 65534)
	cmd.Args[len(cmd.Args)-1] = readOnly

	for _, tc := range []struct {
		name, flag, path, want, kept string
		run                          func() (string, int)
	}{
		{"another user's symlink in a sticky directory", "--csv", link, "symlink not followed", victim, nil},
		{"a block device", "--json", disk, "is a block device", "", nil},
		{"a read-only file, as nobody", "--json", readOnly, "is not writable by this user", readOnly, func() (string, int) {
			var errb bytes.Buffer
			cmd.Stderr = &errb
			cmd.Run()
			return errb.String(), cmd.ProcessState.ExitCode()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var before []byte
			if tc.kept != "" {
				before, _ = os.ReadFile(tc.kept)
			}
			var errOut string
			var code int
			if tc.run != nil {
				errOut, code = tc.run()
			} else {
				_, errOut, code = cli(t, "run", "-q", "--connections", "5", tc.flag, tc.path)
			}
			if code != exitUsage || !strings.Contains(errOut, tc.flag+":") || !strings.Contains(errOut, tc.want) || strings.Count(errOut, "\n") != 1 {
				t.Errorf("%s %s: exit %d, stderr %q; want 2 and one line naming the flag and %q", tc.flag, tc.path, code, errOut, tc.want)
			}
			if tc.kept != "" {
				if after, _ := os.ReadFile(tc.kept); !bytes.Equal(before, after) {
					t.Errorf("%s now holds %q, was %q", tc.kept, after, before)
				}
			}
		})
	}
	for _, d := range []string{sticky, private, nobodyDir} {
		ents, _ := os.ReadDir(d)
		for _, e := range ents {
			if strings.Contains(e.Name(), ".tmp") {
				t.Errorf("temporary file %s left in %s", e.Name(), d)
			}
		}
	}
}

// A reader of stdout that went away (connlimit | head) loses the summary
// only: the process is not killed by SIGPIPE, the report files are written
// whole, no temporary file is left, and the exit status is 3.
func TestBrokenStdout(t *testing.T) {
	dir := t.TempDir()
	csv, js := filepath.Join(dir, "a.csv"), filepath.Join(dir, "a.json")
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.Close() // the reader is gone before the first write
	var errb bytes.Buffer
	cmd := exec.Command(testExe, "run", "-q", "--connections", "20", "--hold", "0", "--csv", csv, "--json", js)
	cmd.Stdout, cmd.Stderr = w, &errb
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	err = cmd.Run()
	w.Close()
	if code := cmd.ProcessState.ExitCode(); code != 3 || !strings.Contains(errb.String(), "broken pipe") {
		t.Fatalf("exit %d (%v), stderr %q; want 3 and the broken pipe named", code, err, errb.String())
	}
	s := readSummary(t, js)
	checkCSV(t, csv, s)
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Errorf("%s holds %v, want the two reports and no temporary file", dir, ents)
	}
	noProcessLeft(t)
}

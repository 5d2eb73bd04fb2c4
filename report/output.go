package report

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Output is a report file written atomically: it is built in a temporary
// file beside its final path and renamed into place by Commit, so a reader
// never sees half a report and an aborted run leaves nothing behind.
type Output struct {
	path string
	f    *os.File
	*bufio.Writer
}

// CreateOutput opens the temporary file at once, so a path that cannot be
// written fails before the run starts.
func CreateOutput(path string) (*Output, error) {
	dir := filepath.Dir(path)
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return nil, fmt.Errorf("%s is a directory", path)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fmt.Errorf("cannot write %s: %w", path, err)
	}
	return &Output{path: path, f: f, Writer: bufio.NewWriterSize(f, 64<<10)}, nil
}

// Path is the final path.
func (o *Output) Path() string { return o.path }

// Commit flushes, closes and renames the file into place.
func (o *Output) Commit() error {
	err := o.Flush()
	if err == nil {
		err = o.f.Chmod(0o644)
	}
	if cerr := o.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(o.f.Name(), o.path)
	}
	if err != nil {
		os.Remove(o.f.Name())
		return fmt.Errorf("write %s: %w", o.path, err)
	}
	return nil
}

// Abort removes the temporary file. It is safe after Commit.
func (o *Output) Abort() {
	o.f.Close()
	os.Remove(o.f.Name())
}

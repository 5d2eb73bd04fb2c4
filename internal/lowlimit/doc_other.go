//go:build !linux

// Package lowlimit stops connlimit at start-up when the hard RLIMIT_NOFILE
// is too low for it to run (Linux only).
package lowlimit

// MinNoFile is the least hard limit connlimit starts under.
const MinNoFile = 16

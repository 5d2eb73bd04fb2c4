//go:build !linux

package limits

// GrowFDTable does nothing outside Linux.
func GrowFDTable(int) error { return nil }
